/*
 * plugins/e1000e/e1000e_rxtx.c — the burst path of the 82574 plug-in:
 * extended RX descriptors (82574 datasheet 7.1.5), legacy and TCP/IP
 * context/data TX descriptors (7.2), one tail write per burst.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "plugins/e1000e/e1000e.h"

#define E1K_BATCH 64u

static int queue_ok(const npa_plugin_queue *q) {
  return q != NULL && q->dev != NULL && q->running && q->rx_ring != NULL && q->tx_ring != NULL;
}

/* ------------------------------------------------------------------ RX */

/* Post b in slot i. RCTL.BSIZE is 2048 (7.1.1), so the buffer must have
 * 2048 bytes from data_off: the device writes a whole buffer's worth. */
static inline int rx_post(npa_plugin_queue *q, uint16_t i, npa_buf *b) {
  if (b == NULL || b->buf_len < NPA_BUF_DATA_OFF + E1K_RX_BUF_SIZE) return -EINVAL;
  b->data_off = NPA_BUF_DATA_OFF;
  q->rx_bufs[i] = b;
  q->rx_ring[i].read.addr = npa_buf_data_iova(b);
  /* Clear the write-back's status (DD) last, so a stale DD never pairs
   * with the new address. */
  q->rx_ring[i].read.zero = 0;
  return 0;
}

int e1k_rx_fill(npa_plugin_queue *q) {
  e1k_dev *d = q->dev;
  uint16_t i = 0;
  while (i < q->nb_desc) {
    npa_buf *b[E1K_BATCH];
    uint32_t left = (uint32_t)q->nb_desc - i;
    uint16_t want = (uint16_t)(left < E1K_BATCH ? left : E1K_BATCH);
    uint16_t got = d->svc->buf_alloc(d->svc->ctx, q->qid, b, want);
    if (got > want) got = want; /* a buggy provider must not overrun b[] */
    for (uint16_t k = 0; k < got; k++) {
      if (rx_post(q, i, b[k]) != 0) {
        e1k_log(d, NPA_LOG_ERROR, "RX buffer %p is too small (buf_len %u, need %u)",
                (void *)b[k], b[k] ? b[k]->buf_len : 0, NPA_BUF_DATA_OFF + E1K_RX_BUF_SIZE);
        d->svc->buf_free(d->svc->ctx, q->qid, b + k, (uint16_t)(got - k));
        return -EINVAL;
      }
      i++;
    }
    if (got < want) {
      e1k_log(d, NPA_LOG_ERROR, "RX pool of queue %u ran dry after %u of %u buffers", q->qid, i,
              q->nb_desc);
      return -ENOMEM;
    }
  }
  q->rx_next = 0;
  return 0;
}

uint16_t e1k_rx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (!queue_ok(q) || bufs == NULL) return 0;
  e1k_dev *d = q->dev;
  uint16_t got = 0;
  int posted = 0;
  uint16_t last = 0;
  while (got < n) {
    /* How many completed descriptors are waiting (7.1.4: DD set by the
     * device once the buffer and the descriptor are written back). */
    uint32_t left = (uint32_t)n - got;
    uint16_t ready = 0, limit = (uint16_t)(left < E1K_BATCH ? left : E1K_BATCH);
    while (ready < limit &&
           (q->rx_ring[(q->rx_next + ready) & q->mask].wb.status_error & E1K_RXD_STAT_DD))
      ready++;
    if (ready == 0) break;
    e1k_rmb(); /* length/errors below were written before DD */
    npa_buf *fresh[E1K_BATCH];
    uint16_t nfresh = d->svc->buf_alloc(d->svc->ctx, q->qid, fresh, ready);
    if (nfresh > ready) nfresh = ready;
    uint16_t used = 0;
    uint16_t k;
    for (k = 0; k < ready; k++) {
      uint16_t i = q->rx_next;
      volatile e1k_rx_desc *rd = &q->rx_ring[i];
      uint32_t status = rd->wb.status_error, errors = status;
      uint16_t len = rd->wb.length;
      uint32_t mrq = rd->wb.mrq, hash = rd->wb.rss;
      npa_buf *b = q->rx_bufs[i];
      /* A frame spanning descriptors cannot happen with LPE off and 2048-byte
       * buffers; drop one if it does, like a frame with a MAC error. */
      if (!(status & E1K_RXD_STAT_EOP) || (errors & E1K_RXD_ERR_FRAME) || len == 0 ||
          len > E1K_RX_BUF_SIZE) {
        q->rx_errors++;
        rx_post(q, i, b); /* recycle in place */
      } else {
        if (used == nfresh) break; /* no replacement: leave it for later */
        if (rx_post(q, i, fresh[used]) != 0) break;
        used++;
        b->next = NULL;
        b->nb_segs = 1;
        b->data_len = len;
        b->pkt_len = len;
        b->ol_flags = 0;
        /* 7.1.4 / RXCSUM: TCPCS/UDPCS mean the L4 checksum was checked, TCPE
         * that it was wrong; IXSM means "ignore the indications". */
        if ((d->offloads & NPA_CAP_RX_CSUM) && !(status & E1K_RXD_STAT_IXSM) &&
            (status & (E1K_RXD_STAT_TCPCS | E1K_RXD_STAT_UDPCS)) &&
            !(errors & (E1K_RXD_ERR_TCPE | E1K_RXD_ERR_IPE)))
          b->ol_flags |= NPA_BUF_OL_RX_CSUM_GOOD;
        /* The device's Toeplitz hash (rss_set programmed it; MRQ type 0:
         * the frame had nothing the enabled types hash). The shell replaces
         * it with its own (npa/plugin.h rss_set), the report is for
         * npa-conform and for shells that trust it. */
        if (__atomic_load_n(&d->rss_on, __ATOMIC_RELAXED) && (mrq & E1K_RXD_MRQ_TYPE) != 0) {
          b->rss_hash = hash;
          b->ol_flags |= NPA_BUF_OL_RX_RSS_HASH;
        }
        bufs[got++] = b;
        q->rx_packets++;
        q->rx_bytes += len;
      }
      last = i;
      posted = 1;
      q->rx_next = (uint16_t)((i + 1) & q->mask);
    }
    if (used < nfresh)
      d->svc->buf_free(d->svc->ctx, q->qid, fresh + used, (uint16_t)(nfresh - used));
    if (k < ready) break;
  }
  if (posted) {
    /* 7.1.3: the device owns [RDH, RDT); moving RDT to the last slot we
     * re-posted hands back every slot before it. One tail write per burst. */
    e1k_wmb();
    e1k_wr32(d->bar, q->rdt, last);
  }
  return got;
}

/* ------------------------------------------------------------------ TX */

static inline uint16_t tx_free(const npa_plugin_queue *q) {
  /* One slot stays empty so that TDT == TDH means "empty", not "full". */
  return (uint16_t)(q->nb_desc - 1 - ((q->tx_tail - q->tx_clean) & q->mask));
}

uint16_t e1k_tx_reap(npa_plugin_queue *q) {
  if (q == NULL || q->dev == NULL || q->tx_ring == NULL) return 0;
  e1k_dev *d = q->dev;
  npa_buf *done[E1K_BATCH];
  uint16_t nd = 0, reaped = 0;
  /* Every descriptor carries RS, so the device writes DD back into each one
   * in ring order (7.2.3); stop at the first without it. */
  while (q->tx_clean != q->tx_tail && (q->tx_ring[q->tx_clean].upper & E1K_TXD_STA_DD)) {
    npa_buf *b = q->tx_bufs[q->tx_clean];
    q->tx_bufs[q->tx_clean] = NULL;
    q->tx_clean = (uint16_t)((q->tx_clean + 1) & q->mask);
    if (b != NULL) {
      done[nd++] = b;
      reaped++;
      if (nd == E1K_BATCH) {
        d->free_tx(d->svc->ctx, q->qid, done, nd);
        nd = 0;
      }
    }
  }
  if (nd) d->free_tx(d->svc->ctx, q->qid, done, nd);
  return reaped;
}

/* The L4 checksum in software, for offsets the 8-bit TUCSS/TUCSO fields of
 * the context descriptor cannot express. Same contract as the hardware: the
 * field holds the pseudo-header sum, the span runs to the end of the frame. */
static int sw_csum(npa_buf *head) {
  uint32_t start = head->csum_start, at = (uint32_t)head->csum_start + head->csum_offset;
  if (at + 2 > head->pkt_len) return -EINVAL;
  uint32_t sum = 0, pos = 0;
  int odd = 0;
  uint8_t *field[2] = {NULL, NULL};
  for (npa_buf *s = head; s != NULL; s = s->next) {
    uint8_t *p = (uint8_t *)npa_buf_data(s);
    for (uint32_t k = 0; k < s->data_len; k++, pos++) {
      if (pos == at) field[0] = p + k;
      if (pos == at + 1) field[1] = p + k;
      if (pos < start) continue;
      sum += odd ? p[k] : (uint32_t)p[k] << 8;
      odd = !odd;
    }
  }
  if (field[0] == NULL || field[1] == NULL) return -EINVAL;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint16_t c = (uint16_t)~sum;
  *field[0] = (uint8_t)(c >> 8);
  *field[1] = (uint8_t)c;
  return 0;
}

/* TX data descriptors never cross a 4 KiB IOVA boundary. QEMU's e1000e
 * (7.2, hw/net/net_tx_pkt.c net_tx_pkt_add_raw_fragment) maps each
 * descriptor's buffer with ONE pci_dma_map(); behind a vIOMMU a range that
 * runs onto a page that is not guest-physically contiguous maps short, and
 * QEMU then drops the whole frame silently while still writing DD back. Pool
 * buffers on 4K pages cross such a boundary often (a 1514-byte frame in a
 * 2176-byte slot: about a third of them; the VFIO lab lost 87 of 255 in a
 * burst). The 82574 itself takes a frame in any number of data descriptors
 * up to EOP (chained segments already go that way), so one extra descriptor
 * for a crossing buffer is harmless on hardware. QEMU also drops a frame of
 * more than 64 pieces (E1000E_MAX_TX_FRAGS); E1K_MAX_TX_DESCS stays below. */
#define E1K_TX_PAGE 4096u
#define E1K_MAX_TX_DESCS 48u

static inline uint16_t tx_pieces(uint64_t iova, uint32_t len) {
  return (uint16_t)((iova + len - 1) / E1K_TX_PAGE - iova / E1K_TX_PAGE + 1);
}

/* Checks a frame before any descriptor is written; returns the number of
 * data descriptors it takes (tx_pieces per segment) or 0 if it cannot be
 * sent. */
static uint16_t tx_check(const e1k_dev *d, const npa_buf *head) {
  if (head == NULL || head->nb_segs == 0 || head->nb_segs > E1K_MAX_TX_SEGS) return 0;
  uint32_t total = 0, descs = 0;
  uint16_t segs = 0;
  for (const npa_buf *s = head; s != NULL; s = s->next) {
    if (++segs > head->nb_segs) return 0;
    if (s->data_len == 0 || (uint32_t)s->data_off + s->data_len > s->buf_len) return 0;
    total += s->data_len;
    descs += tx_pieces(npa_buf_data_iova(s), s->data_len);
  }
  /* 14-byte Ethernet header plus an optional 802.1Q tag; the device adds FCS. */
  if (segs != head->nb_segs || total != head->pkt_len || total < 14 || total > d->mtu + 18) return 0;
  if (descs > E1K_MAX_TX_DESCS) return 0;
  return (uint16_t)descs;
}

uint16_t e1k_tx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (!queue_ok(q) || bufs == NULL || q->tx_stopped) return 0;
  e1k_dev *d = q->dev;
  if (tx_free(q) < (uint16_t)(n + 1)) e1k_tx_reap(q);
  uint16_t sent = 0;
  for (; sent < n; sent++) {
    npa_buf *head = bufs[sent];
    uint16_t descs = tx_check(d, head);
    if (descs == 0) break; /* not ours to send: the caller keeps it */
    int hw_csum = 0;
    if (head->ol_flags & NPA_BUF_OL_TX_CSUM) {
      uint32_t cso = (uint32_t)head->csum_start + head->csum_offset;
      if ((d->offloads & NPA_CAP_TX_CSUM) && cso <= 255 && cso + 2 <= head->data_len &&
          (head->csum_offset == 6 || head->csum_offset == 16)) {
        hw_csum = 1;
      } else if (sw_csum(head) != 0) {
        break;
      }
    }
    int need_ctx = hw_csum && !(q->ctx_valid && q->ctx_css == head->csum_start &&
                                q->ctx_cso == head->csum_start + head->csum_offset);
    if (tx_free(q) < descs + (need_ctx ? 1 : 0)) break;
    if (need_ctx) {
      /* 7.2.10.2 TCP/IP context descriptor: TUCSS = first byte summed,
       * TUCSO = where the sum goes, TUCSE = 0 (to the end of the frame). No
       * IP header checksum: IPCSS/IPCSO/IPCSE stay 0 and POPTS.IXSM 0. */
      volatile e1k_tx_desc *cd = &q->tx_ring[q->tx_tail];
      uint16_t css = head->csum_start, cso = (uint16_t)(head->csum_start + head->csum_offset);
      cd->addr = (uint64_t)css << 32 | (uint64_t)cso << 40;
      cd->upper = 0;
      cd->lower = E1K_TXD_CMD_DEXT | E1K_TXD_DTYP_CTX | E1K_TXD_CMD_RS |
                  (head->csum_offset == 16 ? E1K_TXD_CMD_TCP : 0);
      q->tx_bufs[q->tx_tail] = NULL;
      q->tx_tail = (uint16_t)((q->tx_tail + 1) & q->mask);
      q->ctx_valid = 1;
      q->ctx_css = css;
      q->ctx_cso = cso;
    }
    for (npa_buf *s = head; s != NULL; s = s->next) {
      uint64_t iova = npa_buf_data_iova(s);
      uint32_t left = s->data_len;
      while (left > 0) {
        /* Up to the next 4 KiB IOVA boundary (see E1K_TX_PAGE). */
        uint32_t len = E1K_TX_PAGE - (uint32_t)(iova & (E1K_TX_PAGE - 1));
        if (len > left) len = left;
        int last = s->next == NULL && len == left;
        volatile e1k_tx_desc *td = &q->tx_ring[q->tx_tail];
        uint32_t cmd = E1K_TXD_CMD_IFCS | E1K_TXD_CMD_RS | (last ? E1K_TXD_CMD_EOP : 0);
        td->addr = iova;
        if (hw_csum) {
          /* 7.2.10.3 TCP/IP data descriptor, POPTS.TXSM: insert the L4 sum
           * described by the context above. */
          td->lower = E1K_TXD_CMD_DEXT | E1K_TXD_DTYP_DATA | cmd | len;
          td->upper = E1K_TXD_POPTS_TXSM;
        } else {
          /* 7.2.10.1 legacy descriptor: length, no checksum. */
          td->lower = cmd | len;
          td->upper = 0;
        }
        q->tx_bufs[q->tx_tail] = last ? head : NULL;
        q->tx_tail = (uint16_t)((q->tx_tail + 1) & q->mask);
        iova += len;
        left -= len;
      }
    }
    q->tx_packets++;
    q->tx_bytes += head->pkt_len;
  }
  if (sent) {
    /* Descriptors before the doorbell (7.2.1: the device fetches up to TDT). */
    e1k_wmb();
    e1k_wr32(d->bar, q->tdt, q->tx_tail);
  }
  return sent;
}

/* ------------------------------------------------------------ interrupts */

int e1k_rx_intr_enable(npa_plugin_queue *q, int enable) {
  if (!queue_ok(q)) return -EINVAL;
  e1k_dev *d = q->dev;
  if (!d->irq_wired || !d->rx_intr) return -ENOTSUP;
  const uint32_t cause = E1K_ICR_RXQ(q->qid);
  if (!enable) {
    e1k_wr32(d->bar, E1K_IMC, cause);
    return 0;
  }
  /* Arm: drop a stale RxQn cause (write 1 to clear), unmask, then raise the
   * cause ourselves (ICS) if a frame already waits, so a frame that arrived
   * between the caller's last empty poll and now is never missed. */
  e1k_wr32(d->bar, E1K_ICR, cause);
  e1k_wr32(d->bar, E1K_IMS, cause);
  e1k_rmb();
  if (q->rx_ring[q->rx_next].wb.status_error & E1K_RXD_STAT_DD) e1k_wr32(d->bar, E1K_ICS, cause);
  return 0;
}

int e1k_get_irq_vector(npa_plugin_queue *q) {
  if (q == NULL || q->dev == NULL) return -EINVAL;
  if (!q->dev->irq_wired) return -ENOTSUP;
  return (int)q->vec;
}

/* ------------------------------------------------------------- reclaim */

void e1k_release_all(npa_plugin_queue *q) {
  e1k_dev *d = q->dev;
  npa_buf *batch[E1K_BATCH];
  uint16_t nb = 0;
  if (q->rx_bufs != NULL) {
    for (uint32_t i = 0; i < q->nb_desc; i++) {
      if (q->rx_bufs[i] == NULL) continue;
      batch[nb++] = q->rx_bufs[i];
      q->rx_bufs[i] = NULL;
      if (nb == E1K_BATCH) {
        d->svc->buf_free(d->svc->ctx, q->qid, batch, nb);
        nb = 0;
      }
    }
  }
  if (nb) d->svc->buf_free(d->svc->ctx, q->qid, batch, nb);
  nb = 0;
  /* Unsent TX frames are TX completions too (plugin.h, buf_free_tx). */
  if (q->tx_bufs != NULL) {
    for (uint32_t i = 0; i < q->nb_desc; i++) {
      if (q->tx_bufs[i] == NULL) continue;
      batch[nb++] = q->tx_bufs[i];
      q->tx_bufs[i] = NULL;
      if (nb == E1K_BATCH) {
        d->free_tx(d->svc->ctx, q->qid, batch, nb);
        nb = 0;
      }
    }
  }
  if (nb) d->free_tx(d->svc->ctx, q->qid, batch, nb);
  q->tx_clean = q->tx_tail = 0;
  q->rx_next = 0;
}
