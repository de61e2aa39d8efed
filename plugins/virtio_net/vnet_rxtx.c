/* vnet_rxtx.c — burst ops of the virtio_net plug-in: RX with mergeable
 * buffers into npa_buf chains (5.1.6.4), TX with the virtio_net_hdr in the
 * buffer's headroom (5.1.6.2), one doorbell per burst. */
#include <errno.h>
#include <string.h>

#include "vnet.h"

#define VNET_BATCH 64

/* The header sits in the 12 bytes before the frame, inside the headroom; a
 * buffer whose data_off leaves less room than that (and the npa_buf header)
 * cannot be used. */
static int vnet_buf_fits(const npa_buf *b) {
  return b->data_off >= NPA_BUF_META_SIZE + VNET_HDR_LEN && b->buf_len > b->data_off &&
         b->buf_len <= NPA_BUF_SLOT_SIZE;
}
static vnet_hdr *vnet_hdr_of(npa_buf *b) {
  return (vnet_hdr *)((char *)b + b->data_off - VNET_HDR_LEN);
}

uint16_t vnet_rx_refill(struct npa_plugin_queue *q) {
  const npa_services *s = q->dev->svc;
  uint16_t posted = 0;
  npa_buf *b[VNET_BATCH];
  while (q->rx.num_free > 0 && !q->rx.broken) {
    uint16_t want = q->rx.num_free < VNET_BATCH ? q->rx.num_free : VNET_BATCH;
    uint16_t got = s->buf_alloc(s->ctx, q->qid, b, want);
    if (got > want) got = 0; /* a shell bug; take nothing rather than overrun */
    uint16_t i = 0;
    for (; i < got; i++) {
      if (b[i] == NULL || !vnet_buf_fits(b[i])) break;
      /* The device writes the header, then the frame: one descriptor from
       * data - 12 to the end of the slot (5.1.6.3). */
      vring_seg seg = {npa_buf_data_iova(b[i]) - VNET_HDR_LEN,
                       (uint32_t)(b[i]->buf_len - b[i]->data_off + VNET_HDR_LEN),
                       VRING_DESC_F_WRITE};
      if (vring_add(&q->rx, &seg, 1, b[i]) < 0) break;
      posted++;
    }
    if (i < got) {
      uint16_t bad = 0;
      for (uint16_t j = i; j < got; j++)
        if (b[j] != NULL) b[bad++] = b[j];
      if (bad) s->buf_free(s->ctx, q->qid, b, bad);
      if (i < got && b[0] != NULL && !vnet_buf_fits(b[0]))
        vnet_log(q->dev, NPA_LOG_ERROR, "queue %u: pool buffer has no room for the header",
                 q->qid);
      break;
    }
    if (got < want) break; /* pool is low: try again next burst */
  }
  if (posted) vring_publish(&q->rx);
  return posted;
}

static void vnet_queue_broken(struct npa_plugin_queue *q, const char *which) {
  if (q->broken_logged) return;
  q->broken_logged = 1;
  vnet_log(q->dev, NPA_LOG_ERROR,
           "queue %u: device returned an impossible %s used entry; queue stopped", q->qid,
           which);
}

/* Translate the device's header into npa_buf RX facts (5.1.6.4.1). */
static void vnet_rx_offload(const struct npa_plugin_dev *d, const vnet_hdr *h, npa_buf *b) {
  if (!vnet_has(d, VIRTIO_NET_F_GUEST_CSUM)) return;
  if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    b->ol_flags |= NPA_BUF_OL_RX_CSUM_PARTIAL;
    b->csum_start = h->csum_start;
    b->csum_offset = h->csum_offset;
  } else if (h->flags & VIRTIO_NET_HDR_F_DATA_VALID) {
    b->ol_flags |= NPA_BUF_OL_RX_CSUM_GOOD;
  }
}

static uint16_t vnet_rx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (q == NULL || (bufs == NULL && n)) return 0;
  struct npa_plugin_dev *d = q->dev;
  const npa_services *s = d->svc;
  int mrg = vnet_has(d, VIRTIO_NET_F_MRG_RXBUF);
  uint16_t got = 0;
  while (got < n) {
    uint16_t pending = vring_used_pending(&q->rx);
    if (pending == 0) break;
    uint32_t len0 = 0;
    npa_buf *first = vring_peek_used(&q->rx, 0, &len0);
    if (first == NULL) break;
    uint16_t nb = 1;
    if (mrg) {
      nb = vnet_hdr_of(first)->num_buffers;
      /* 5.1.6.4: num_buffers counts this frame's used entries; more than the
       * ring holds is a device bug, more than are pending means "not yet". */
      if (nb == 0 || nb > q->rx.size) {
        q->rx.broken = 1;
        break;
      }
      if (nb > pending) break;
    }
    npa_buf *head = NULL, *tail = NULL;
    uint32_t total = 0;
    int bad = 0;
    for (uint16_t k = 0; k < nb; k++) {
      uint32_t len = 0;
      npa_buf *b = vring_get_used(&q->rx, &len);
      if (b == NULL) { bad = 1; break; }
      uint32_t room = (uint32_t)(b->buf_len - b->data_off);
      b->next = NULL;
      b->ol_flags = 0;
      b->nb_segs = 1;
      if (k == 0) {
        /* The header precedes the frame in the first buffer only. */
        if (len < VNET_HDR_LEN || len - VNET_HDR_LEN > room) bad = 1;
        b->data_len = (uint16_t)(len >= VNET_HDR_LEN ? len - VNET_HDR_LEN : 0);
        vnet_rx_offload(d, vnet_hdr_of(b), b);
        head = b;
      } else {
        /* Continuation buffers carry frame bytes from the descriptor's
         * start, i.e. 12 bytes before data_off. */
        b->data_off = (uint16_t)(b->data_off - VNET_HDR_LEN);
        if (len > room + VNET_HDR_LEN) bad = 1;
        b->data_len = (uint16_t)(len <= room + VNET_HDR_LEN ? len : 0);
        tail->next = b;
        head->nb_segs++;
      }
      tail = b;
      total += b->data_len;
    }
    if (head == NULL) break;
    head->pkt_len = total;
    if (bad || total == 0) {
      s->buf_free(s->ctx, q->qid, &head, 1);
      q->st.rx_dropped++;
      continue;
    }
    q->st.rx_packets++;
    q->st.rx_bytes += total;
    bufs[got++] = head;
  }
  if (q->rx.broken) vnet_queue_broken(q, "RX");
  if (vnet_rx_refill(q) && vring_kick_needed(&q->rx)) vring_kick(&q->rx);
  return got;
}

uint16_t vnet_tx_reap(struct npa_plugin_queue *q) {
  const npa_services *s = q->dev->svc;
  npa_buf *done[VNET_BATCH];
  uint16_t total = 0, k = 0;
  uint32_t len;
  npa_buf *b;
  while ((b = vring_get_used(&q->tx, &len)) != NULL) {
    done[k++] = b;
    if (k == VNET_BATCH) {
      q->dev->free_tx(s->ctx, q->qid, done, k);
      total = (uint16_t)(total + k);
      k = 0;
    }
  }
  if (k) q->dev->free_tx(s->ctx, q->qid, done, k);
  if (q->tx.broken) vnet_queue_broken(q, "TX");
  return (uint16_t)(total + k);
}

/* Fill the TX header from the buffer's offload requests (5.1.6.2).
 * -ENOTSUP when a request is outside what configure enabled. */
static int vnet_tx_hdr(const struct npa_plugin_dev *d, npa_buf *b, vnet_hdr *h) {
  memset(h, 0, sizeof(*h));
  uint32_t f = b->ol_flags;
  if (f & NPA_BUF_OL_TX_VLAN) return -ENOTSUP;
  if (f & (NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6)) {
    if (!(d->offloads & NPA_CAP_TSO) || b->tso_segsz == 0) return -ENOTSUP;
    /* hdr_len: up to the end of the TCP header, whose length is the data
     * offset nibble 12 bytes into it; it must be in the first segment. */
    uint32_t tcp = b->csum_start;
    if (tcp + 20 > b->data_len) return -EINVAL;
    uint32_t thl = (uint32_t)(((const uint8_t *)npa_buf_data(b))[tcp + 12] >> 4) * 4;
    if (thl < 20 || tcp + thl > b->data_len) return -EINVAL;
    h->gso_type = (f & NPA_BUF_OL_TX_TSO4) ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    h->gso_size = b->tso_segsz;
    h->hdr_len = (uint16_t)(tcp + thl);
    f |= NPA_BUF_OL_TX_CSUM; /* 5.1.6.2.1: GSO requires NEEDS_CSUM */
  }
  if (f & NPA_BUF_OL_TX_CSUM) {
    if (!(d->offloads & NPA_CAP_TX_CSUM)) return -ENOTSUP;
    if ((uint32_t)b->csum_start + b->csum_offset + 2 > b->pkt_len) return -EINVAL;
    h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h->csum_start = b->csum_start;
    h->csum_offset = b->csum_offset;
  }
  return 0;
}

static uint16_t vnet_tx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (q == NULL || (bufs == NULL && n)) return 0;
  struct npa_plugin_dev *d = q->dev;
  vnet_tx_reap(q);
  if (q->quiesced || q->tx.broken) return 0;
  uint16_t sent = 0;
  vring_seg segs[VNET_MAX_SEGS];
  for (; sent < n; sent++) {
    npa_buf *b = bufs[sent];
    if (b == NULL || !vnet_buf_fits(b)) break;
    /* Walk the chain with a bound: nb_segs must match the links. */
    uint16_t ns = 0;
    uint32_t bytes = 0;
    int ok = 1;
    for (npa_buf *s = b; s != NULL; s = s->next) {
      if (ns == VNET_MAX_SEGS || (ns > 0 && s->data_off + (uint32_t)s->data_len > s->buf_len) ||
          (uint32_t)s->data_off + s->data_len > s->buf_len) {
        ok = 0;
        break;
      }
      segs[ns].addr = npa_buf_data_iova(s);
      segs[ns].len = s->data_len;
      segs[ns].flags = 0;
      bytes += s->data_len;
      ns++;
    }
    if (!ok || ns != b->nb_segs || bytes != b->pkt_len || bytes == 0) break;
    if (ns > q->tx.num_free) break; /* ring full: the rest stays the caller's */
    if (vnet_tx_hdr(d, b, vnet_hdr_of(b)) < 0) break;
    /* The header goes in front of the first segment's frame bytes. */
    segs[0].addr -= VNET_HDR_LEN;
    segs[0].len += VNET_HDR_LEN;
    if (vring_add(&q->tx, segs, ns, b) < 0) break;
    q->st.tx_packets++;
    q->st.tx_bytes += bytes;
  }
  if (sent) {
    vring_publish(&q->tx);
    if (vring_kick_needed(&q->tx)) vring_kick(&q->tx);
  }
  return sent;
}

static uint16_t vnet_tx_reap_op(npa_plugin_queue *q) { return q ? vnet_tx_reap(q) : 0; }

static int vnet_rx_intr_enable(npa_plugin_queue *q, int enable) {
  if (q == NULL) return -EINVAL;
  if (q->rx_vec == VIRTIO_MSI_NO_VECTOR) return -ENOTSUP;
  /* 2.7.7: without EVENT_IDX the flag is the whole protocol. The caller
   * re-polls after arming (shell.h), which closes the race with a frame used
   * just before the flag became visible. */
  vring_set_no_interrupt(&q->rx, !enable);
  return 0;
}

static int vnet_get_irq_vector(npa_plugin_queue *q) {
  if (q == NULL) return -EINVAL;
  return q->rx_vec == VIRTIO_MSI_NO_VECTOR ? -ENOTSUP : q->rx_vec;
}

const npa_plugin_fast_ops vnet_fast_ops = {
    .struct_size = sizeof(npa_plugin_fast_ops),
    .rx_burst = vnet_rx_burst,
    .tx_burst = vnet_tx_burst,
    .tx_reap = vnet_tx_reap_op,
    .rx_intr_enable = vnet_rx_intr_enable,
    .get_irq_vector = vnet_get_irq_vector,
};
