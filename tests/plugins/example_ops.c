/* The my_* ops behind the example at the top of include/npa/plugin.h, so that
 * the example, cut out of the header at build time, links into a plug-in the
 * shell loads (tests/plugins/example/libexample_plugin.so, driven by
 * example_plugin_test.cc on the plug-in test kit).
 *
 * The "device" is a software loopback behind BAR0 (it only checks the BAR is
 * there): each queue pair has a DMA "descriptor ring" from dma_alloc (never
 * read: it is there so that remove has DMA to give back), an RX ring filled
 * from buf_alloc at start, and a tx_burst that copies every frame into the
 * next posted RX buffer and completes the TX buffer at once with buf_free_tx
 * (through npa_services_tx_free: the example sets NPA_PLUGIN_F_TX_FREE). A
 * frame with no posted RX buffer, more than one segment or longer than the
 * MTU allows is dropped (rx_dropped). stop hands every buffer back, remove
 * every DMA block. tests/plugins/test_good.c is the same device with more
 * knobs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "npa/plugin.h"

#define EX_VENDOR 0x1d0f
#define EX_DEVICE 0x1012
#define EX_MAX_QP 2
#define EX_MIN_RING 8
#define EX_MAX_RING 256
#define EX_MAX_MTU 1500
#define EX_ETH_OVERHEAD 18 /* Ethernet header and one VLAN tag */

struct npa_plugin_queue {
  struct npa_plugin_dev *dev;
  uint16_t qid;
  npa_dma_mem ring;           /* the pretend descriptor ring */
  npa_buf *posted[EX_MAX_RING]; /* empty RX buffers, the "device's" */
  uint16_t nposted;
  npa_buf *done[EX_MAX_RING]; /* filled, waiting for rx_burst (FIFO) */
  uint16_t done_head, ndone;
  npa_plugin_qstats stats;
};

struct npa_plugin_dev {
  const npa_services *svc;
  uint32_t mtu;
  uint16_t nb_queue_pairs, ring_size;
  int configured, started;
  struct npa_plugin_queue q[EX_MAX_QP];
};

static void ex_log(const npa_services *svc, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  svc->log(svc->ctx, level, fmt, ap);
  va_end(ap);
}

int my_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out) {
  if (svc == NULL || info == NULL || out == NULL) return -EINVAL;
  *out = NULL;
  /* The ABI 1.0 services table is enough; buf_free_tx (1.1) is used when there. */
  if (svc->struct_size < offsetof(npa_services, buf_free_tx) || info->struct_size < sizeof(*info) ||
      !svc->bar_map ||
      !svc->dma_alloc || !svc->dma_free || !svc->buf_alloc || !svc->buf_free || !svc->log)
    return -EINVAL;
  if (info->vendor != EX_VENDOR || info->device != EX_DEVICE) return -ENODEV;
  volatile void *bar = NULL;
  uint64_t len = 0;
  int rc = svc->bar_map(svc->ctx, 0, &bar, &len);
  if (rc != 0 || bar == NULL || len < 4096) return rc != 0 ? rc : -ENODEV;
  npa_plugin_dev *d = calloc(1, sizeof(*d));
  if (d == NULL) return -ENOMEM;
  d->svc = svc;
  d->mtu = EX_MAX_MTU;
  for (uint16_t i = 0; i < EX_MAX_QP; i++) {
    d->q[i].dev = d;
    d->q[i].qid = i;
    d->q[i].stats.struct_size = sizeof(d->q[i].stats);
  }
  ex_log(svc, NPA_LOG_INFO, "my_nic probed at %s", info->pci_address);
  *out = d;
  return 0;
}

static void ex_free_rings(npa_plugin_dev *d) {
  for (uint16_t i = 0; i < EX_MAX_QP; i++)
    if (d->q[i].ring.vaddr != NULL) d->svc->dma_free(d->svc->ctx, &d->q[i].ring);
}

int my_stop(npa_plugin_dev *d) {
  if (d == NULL) return -EINVAL;
  const npa_services *svc = d->svc;
  for (uint16_t i = 0; i < d->nb_queue_pairs && d->started; i++) {
    struct npa_plugin_queue *q = &d->q[i];
    if (q->nposted) svc->buf_free(svc->ctx, q->qid, q->posted, q->nposted);
    q->nposted = 0;
    for (; q->ndone; q->ndone--) {
      svc->buf_free(svc->ctx, q->qid, &q->done[q->done_head], 1);
      q->done_head = (uint16_t)((q->done_head + 1) % EX_MAX_RING);
    }
    q->done_head = 0;
  }
  d->started = 0;
  return 0;
}

void my_remove(npa_plugin_dev *d) {
  if (d == NULL) return;
  my_stop(d);
  ex_free_rings(d);
  free(d);
}

int my_caps(npa_plugin_dev *d, npa_dev_caps *c) {
  if (d == NULL || c == NULL || c->struct_size < sizeof(*c)) return -EINVAL;
  c->max_queue_pairs = EX_MAX_QP;
  c->min_ring_size = EX_MIN_RING;
  c->max_ring_size = EX_MAX_RING;
  c->max_mtu = EX_MAX_MTU;
  c->offloads = NPA_CAP_RX_CSUM;
  static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x10, 0x12};
  memcpy(c->perm_mac, mac, sizeof(mac));
  return 0;
}

int my_configure(npa_plugin_dev *d, const npa_dev_config *cfg) {
  if (d == NULL || cfg == NULL || cfg->struct_size < sizeof(*cfg)) return -EINVAL;
  if (d->started) return -EBUSY;
  if (cfg->nb_queue_pairs < 1 || cfg->nb_queue_pairs > EX_MAX_QP || cfg->ring_size < EX_MIN_RING ||
      cfg->ring_size > EX_MAX_RING || (cfg->ring_size & (cfg->ring_size - 1)) ||
      cfg->mtu < 68 || cfg->mtu > EX_MAX_MTU)
    return -EINVAL;
  if (cfg->offloads & ~NPA_CAP_RX_CSUM) return -ENOTSUP;
  /* All or nothing: the new rings first, then the old ones go. */
  npa_dma_mem rings[EX_MAX_QP];
  memset(rings, 0, sizeof(rings));
  for (uint16_t i = 0; i < cfg->nb_queue_pairs; i++) {
    rings[i].struct_size = sizeof(rings[i]);
    int rc = d->svc->dma_alloc(d->svc->ctx, (uint64_t)cfg->ring_size * 16u, 4096, &rings[i]);
    if (rc != 0) {
      while (i-- > 0) d->svc->dma_free(d->svc->ctx, &rings[i]);
      return rc;
    }
  }
  ex_free_rings(d);
  for (uint16_t i = 0; i < EX_MAX_QP; i++) d->q[i].ring = rings[i];
  d->nb_queue_pairs = cfg->nb_queue_pairs;
  d->ring_size = cfg->ring_size;
  d->mtu = cfg->mtu;
  d->configured = 1;
  return 0;
}

/* Post empty buffers until the ring (posted + filled) holds ring_size. */
static void ex_refill(struct npa_plugin_queue *q) {
  const npa_services *svc = q->dev->svc;
  uint16_t want = (uint16_t)(q->dev->ring_size - q->nposted - q->ndone);
  if (want) q->nposted += svc->buf_alloc(svc->ctx, q->qid, q->posted + q->nposted, want);
}

int my_start(npa_plugin_dev *d) {
  if (d == NULL || !d->configured) return -EINVAL;
  if (d->started) return -EBUSY;
  for (uint16_t i = 0; i < d->nb_queue_pairs; i++) ex_refill(&d->q[i]);
  d->started = 1;
  return 0;
}

npa_plugin_queue *my_queue(npa_plugin_dev *d, uint16_t qid) {
  return d != NULL && d->started && qid < d->nb_queue_pairs ? &d->q[qid] : NULL;
}

int my_link(npa_plugin_dev *d, npa_link_status *out) {
  if (d == NULL || out == NULL || out->struct_size < sizeof(*out)) return -EINVAL;
  out->up = d->started ? 1 : 0;
  out->speed_mbps = 10000;
  out->full_duplex = 1;
  return 0;
}

int my_stats(npa_plugin_dev *d, uint16_t qid, npa_plugin_qstats *out) {
  if (d == NULL || qid >= EX_MAX_QP || out == NULL || out->struct_size < sizeof(*out))
    return -EINVAL;
  *out = d->q[qid].stats;
  return 0;
}

uint16_t my_rx(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (q == NULL || bufs == NULL || !q->dev->started) return 0;
  uint16_t got = 0;
  while (got < n && q->ndone) {
    bufs[got++] = q->done[q->done_head];
    q->done_head = (uint16_t)((q->done_head + 1) % EX_MAX_RING);
    q->ndone--;
  }
  ex_refill(q);
  return got;
}

uint16_t my_tx(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  if (q == NULL || bufs == NULL || !q->dev->started) return 0;
  const npa_services *svc = q->dev->svc;
  uint16_t i = 0;
  for (; i < n && bufs[i] != NULL; i++) {
    const npa_buf *tx = bufs[i];
    uint32_t len = tx->data_len;
    q->stats.tx_packets++;
    q->stats.tx_bytes += len;
    if (tx->nb_segs != 1 || tx->next != NULL || len > q->dev->mtu + EX_ETH_OVERHEAD ||
        (uint32_t)tx->data_off + len > tx->buf_len || q->nposted == 0) {
      q->stats.rx_dropped++;
      continue;
    }
    npa_buf *rx = q->posted[--q->nposted];
    rx->data_off = NPA_BUF_DATA_OFF;
    memcpy(npa_buf_data(rx), npa_buf_data(tx), len);
    rx->data_len = (uint16_t)len;
    rx->pkt_len = len;
    rx->nb_segs = 1;
    rx->next = NULL;
    rx->ol_flags = 0;
    q->done[(q->done_head + q->ndone) % EX_MAX_RING] = rx;
    q->ndone++;
    q->stats.rx_packets++;
    q->stats.rx_bytes += len;
  }
  /* Every frame taken is complete (looped or dropped) within the burst. */
  if (i) npa_services_tx_free(svc)(svc->ctx, q->qid, bufs, i);
  return i;
}
