/* test_good: a valid, minimal plug-in for a software loopback "device".
 *
 * Each queue behaves like a NIC wired back to itself: at start its RX ring is
 * filled with ring_size empty buffers from svc->buf_alloc; tx_burst "DMAs"
 * every frame into the next posted RX buffer and completes the TX buffer at
 * once with svc->buf_free; rx_burst hands the filled buffers up and reposts
 * fresh ones. stop gives every buffer the ring still holds back through
 * svc->buf_free, as plugin.h requires. A frame with no posted RX buffer, more
 * than one segment or longer than the MTU allows is dropped (rx_dropped).
 *
 * It drives PCI 1d0f:100f ("npa loopback") and offers RX checksum only to
 * have a capability to negotiate. Optional ops implemented: quiesce, set_mtu.
 *
 * Built with LB_STUCK (tests/plugins/stuck/, PCI 1d0f:1010): a device whose
 * TX hangs. tx_burst takes frames into its ring and never completes them,
 * quiesce never finishes, stop hands them back. The shell must then report
 * exactly the frames it held as lost (RevokeDone.tx_inflight_lost).
 *
 * Built with LB_NULL (tests/plugins/null/, PCI 1d0f:1011): a device whose
 * own work is tiny and fixed, for tests/bench/vf_dispatch_bench (the cost of
 * the shell's VF dispatch per frame). tx_burst completes the whole burst
 * with one TX-completion call and counts tx_packets only (no per-frame
 * work). rx_burst is a device that always has a full burst of 64-byte
 * frames waiting: it hands up n buffers fresh from svc->buf_alloc (what a
 * real device's ring refill costs) with their lengths set, so the RX
 * dispatch is measured per frame too; after quiesce it delivers nothing
 * (a drained device). Start and stop post and return the RX ring as the
 * loopback does.
 *
 * RSS (ABI 1.1 rss_set): test_good proper offers NPA_CAP_RSS and rss_set,
 * checks the configuration as a device would (key length, power-of-two
 * table, entries below the configured queues, started or not) and records
 * the last one it accepted. The record is read by shell/vf tests through a
 * second, test-only exported symbol, test_good_rss_record (a vendor plug-in
 * exports only the entry); the loopback itself keeps every frame on the
 * queue it was sent on. Built with LB_NO_RSS (tests/plugins/norss/, the
 * same PCI ID): no NPA_CAP_RSS and no rss_set, the shell must hash in
 * software alone. The other variants have no rss_set either.
 *
 * TX completions and byte counts: every variant returns its TX frames
 * through npa_services_tx_free (buf_free_tx) and sets NPA_PLUGIN_F_TX_FREE,
 * and counts tx_bytes (pkt_len of every frame tx_burst took) exactly per
 * queue and sets NPA_PLUGIN_F_TX_BYTES, as an ABI 1.1 plug-in does; it
 * counts rx_bytes of every frame rx_burst hands up and sets
 * NPA_PLUGIN_F_RX_BYTES (not LB_HOSTILE_RX, whose foreign buffers are not
 * counted). Built
 * with LB_ABI_1_0 (tests/plugins stuck_v10/, null_v10/): the same plug-in as
 * one built against ABI 1.0 would be: npa_plugin_info's 1.0 size (72
 * bytes), minor 0, no flags, TX frames back through buf_free. The shell
 * must count its TX frames and bytes exactly either way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "npa/plugin.h"

#define LB_VENDOR 0x1d0f
#ifdef LB_STUCK
#define LB_DEVICE 0x1010
#elif defined(LB_NULL)
#define LB_DEVICE 0x1011
#else
#define LB_DEVICE 0x100f
#endif
#if !defined(LB_STUCK) && !defined(LB_NULL) && !defined(LB_HOSTILE_RX) && !defined(LB_NO_RSS)
#define LB_RSS 1 /* test_good proper: rss_set */
#endif
#ifdef LB_NULL
/* The null device "does" TX checksum and VLAN insertion (there is no wire
 * to get wrong), so a guest that configures them leaves the shell no
 * software offload to run: the benchmark measures the dispatch a device
 * with those offloads gets. */
#define LB_CAPS (NPA_CAP_RX_CSUM | NPA_CAP_TX_CSUM | NPA_CAP_VLAN_INSERT)
#elif defined(LB_RSS)
#define LB_CAPS (NPA_CAP_RX_CSUM | NPA_CAP_RSS)
#else
#define LB_CAPS NPA_CAP_RX_CSUM
#endif
#define LB_MAX_QP 4
#define LB_MIN_RING 8
#define LB_MAX_RING 256
#define LB_MAX_MTU 9000
#define LB_ETH_OVERHEAD 18 /* Ethernet header, one VLAN tag */
#define LB_NULL_FRAME_LEN 64 /* LB_NULL: every received frame */

struct npa_plugin_queue {
  struct npa_plugin_dev *dev;
  uint16_t qid;
  npa_buf *posted[LB_MAX_RING]; /* empty, owned by the "device" */
  uint16_t nposted;
  npa_buf *done[LB_MAX_RING];   /* filled, waiting for rx_burst (FIFO) */
  uint16_t done_head, ndone;
  npa_buf *held[LB_MAX_RING];   /* LB_STUCK: taken for TX, never completed */
  uint16_t nheld;
  npa_plugin_qstats stats;
};

struct npa_plugin_dev {
  const npa_services *svc;
  npa_buf_free_fn free_tx;
  uint32_t mtu;
  uint16_t nb_queue_pairs, ring_size;
  int started;
  int quiesced; /* LB_NULL: rx_burst delivers nothing from quiesce to stop */
  struct npa_plugin_queue q[LB_MAX_QP];
};

static void lb_log(const npa_services *svc, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  svc->log(svc->ctx, level, fmt, ap);
  va_end(ap);
}

static int lb_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out) {
  if (svc == NULL || info == NULL || out == NULL) return -EINVAL;
  if (svc->struct_size < offsetof(npa_services, buf_free_tx) || info->struct_size < sizeof(*info))
    return -EINVAL;
  if (info->vendor != LB_VENDOR || info->device != LB_DEVICE) return -ENODEV;
  npa_plugin_dev *d = calloc(1, sizeof(*d));
  if (d == NULL) return -ENOMEM;
  d->svc = svc;
#ifdef LB_ABI_1_0
  d->free_tx = svc->buf_free;
#else
  d->free_tx = npa_services_tx_free(svc);
#endif
  d->mtu = 1500;
  for (uint16_t i = 0; i < LB_MAX_QP; i++) {
    d->q[i].dev = d;
    d->q[i].qid = i;
    d->q[i].stats.struct_size = sizeof(d->q[i].stats);
  }
  lb_log(svc, NPA_LOG_INFO, "loopback probed at %s", info->pci_address);
  *out = d;
  return 0;
}

static void lb_free_ring(struct npa_plugin_queue *q) {
  const npa_services *svc = q->dev->svc;
  if (q->nposted) svc->buf_free(svc->ctx, q->qid, q->posted, q->nposted);
  q->nposted = 0;
  while (q->ndone) {
    /* The FIFO may wrap: free it in at most two contiguous pieces. */
    uint16_t run = q->ndone;
    if (q->done_head + run > LB_MAX_RING) run = (uint16_t)(LB_MAX_RING - q->done_head);
    svc->buf_free(svc->ctx, q->qid, q->done + q->done_head, run);
    q->done_head = (uint16_t)((q->done_head + run) % LB_MAX_RING);
    q->ndone = (uint16_t)(q->ndone - run);
  }
  q->done_head = 0;
  if (q->nheld) q->dev->free_tx(svc->ctx, q->qid, q->held, q->nheld);
  q->nheld = 0;
}

static int lb_stop(npa_plugin_dev *d) {
  for (uint16_t i = 0; i < d->nb_queue_pairs; i++) lb_free_ring(&d->q[i]);
  d->started = 0;
  return 0;
}

static void lb_remove(npa_plugin_dev *d) {
  if (d == NULL) return;
  if (d->started) lb_stop(d);
  free(d);
}

static int lb_get_caps(npa_plugin_dev *d, npa_dev_caps *c) {
  (void)d;
  if (c == NULL || c->struct_size < sizeof(*c)) return -EINVAL;
  c->max_queue_pairs = LB_MAX_QP;
  c->min_ring_size = LB_MIN_RING;
  c->max_ring_size = LB_MAX_RING;
  c->max_mtu = LB_MAX_MTU;
  c->offloads = LB_CAPS;
  static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x0f, 0x01};
  memcpy(c->perm_mac, mac, sizeof(mac));
  return 0;
}

static int lb_configure(npa_plugin_dev *d, const npa_dev_config *cfg) {
  if (cfg == NULL || cfg->struct_size < sizeof(*cfg) || d->started) return -EINVAL;
  if (cfg->nb_queue_pairs < 1 || cfg->nb_queue_pairs > LB_MAX_QP) return -EINVAL;
  if (cfg->ring_size < LB_MIN_RING || cfg->ring_size > LB_MAX_RING ||
      (cfg->ring_size & (cfg->ring_size - 1)))
    return -EINVAL;
  if (cfg->mtu < 68 || cfg->mtu > LB_MAX_MTU) return -EINVAL;
  if (cfg->offloads & ~(uint64_t)(LB_CAPS & ~NPA_CAP_RSS)) return -ENOTSUP; /* rss_set: apart */
  d->nb_queue_pairs = cfg->nb_queue_pairs;
  d->ring_size = cfg->ring_size;
  d->mtu = cfg->mtu;
  return 0;
}

/* Post empty buffers until the ring (posted + filled) holds ring_size. */
static void lb_refill(struct npa_plugin_queue *q) {
  const npa_services *svc = q->dev->svc;
  uint16_t want = (uint16_t)(q->dev->ring_size - q->nposted - q->ndone);
  if (want) q->nposted += svc->buf_alloc(svc->ctx, q->qid, q->posted + q->nposted, want);
}

static int lb_start(npa_plugin_dev *d) {
  for (uint16_t i = 0; i < d->nb_queue_pairs; i++) lb_refill(&d->q[i]);
  d->started = 1;
  d->quiesced = 0;
  return 0;
}

static npa_plugin_queue *lb_queue(npa_plugin_dev *d, uint16_t qid) {
  return d->started && qid < d->nb_queue_pairs ? &d->q[qid] : NULL;
}

static int lb_link_status(npa_plugin_dev *d, npa_link_status *out) {
  if (out == NULL || out->struct_size < sizeof(*out)) return -EINVAL;
  out->up = d->started ? 1 : 0;
  out->speed_mbps = 10000;
  out->full_duplex = 1;
  return 0;
}

static int lb_queue_stats(npa_plugin_dev *d, uint16_t qid, npa_plugin_qstats *out) {
  if (qid >= LB_MAX_QP || out == NULL || out->struct_size < sizeof(*out)) return -EINVAL;
  *out = d->q[qid].stats;
  return 0;
}

static int lb_quiesce(npa_plugin_dev *d, uint32_t timeout_us) {
#ifdef LB_STUCK
  /* Waits as a real device would, and the TX never finishes. */
  d->svc->sleep_us(d->svc->ctx, timeout_us > 1000 ? 1000 : timeout_us);
  for (uint16_t i = 0; i < d->nb_queue_pairs; i++)
    if (d->q[i].nheld) return -EAGAIN;
  return 0;
#else
  (void)timeout_us;
  d->quiesced = 1;
  return 0; /* TX completes inside tx_burst: never anything in flight */
#endif
}

#ifdef LB_RSS
/* What rss_set last accepted, and how often it was called (also refused). */
typedef struct test_good_rss {
  uint32_t calls, accepted;
  uint32_t started;         /* the device was started at the last accepted call */
  uint32_t hash_types;
  uint16_t table_len, nb_queue_pairs;
  uint8_t key[NPA_RSS_CONF_KEY_LEN];
  uint16_t table[NPA_RSS_CONF_TABLE_MAX];
} test_good_rss;
static test_good_rss lb_rss;

NPA_PLUGIN_EXPORT const test_good_rss *test_good_rss_record(void);
NPA_PLUGIN_EXPORT const test_good_rss *test_good_rss_record(void) { return &lb_rss; }

static int lb_rss_set(npa_plugin_dev *d, const struct npa_rss_conf *c) {
  lb_rss.calls++;
  if (c == NULL || c->struct_size < sizeof(*c) || c->key == NULL || c->table == NULL ||
      c->key_len != NPA_RSS_CONF_KEY_LEN || c->table_len == 0 ||
      c->table_len > NPA_RSS_CONF_TABLE_MAX || (c->table_len & (c->table_len - 1)) ||
      c->nb_queue_pairs != d->nb_queue_pairs || c->hash_types == 0)
    return -EINVAL;
  for (uint16_t i = 0; i < c->table_len; i++)
    if (c->table[i] >= d->nb_queue_pairs) return -EINVAL;
  lb_rss.accepted++;
  lb_rss.started = (uint32_t)d->started;
  lb_rss.hash_types = c->hash_types;
  lb_rss.table_len = c->table_len;
  lb_rss.nb_queue_pairs = c->nb_queue_pairs;
  memcpy(lb_rss.key, c->key, NPA_RSS_CONF_KEY_LEN);
  memcpy(lb_rss.table, c->table, c->table_len * sizeof(uint16_t));
  return 0;
}
#endif

static int lb_set_mtu(npa_plugin_dev *d, uint32_t mtu) {
  if (mtu < 68 || mtu > LB_MAX_MTU) return -EINVAL;
  d->mtu = mtu;
  return 0;
}

static uint16_t lb_rx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
#ifdef LB_NULL
  /* Fixed work per frame whatever the caller: the two lengths a device's
   * descriptor write-back would give. */
  const npa_services *svc = q->dev->svc;
  if (q->dev->quiesced || n == 0) return 0;
  uint16_t got = svc->buf_alloc(svc->ctx, q->qid, bufs, n);
  for (uint16_t i = 0; i < got; i++) {
    bufs[i]->data_len = LB_NULL_FRAME_LEN;
    bufs[i]->pkt_len = LB_NULL_FRAME_LEN;
  }
  q->stats.rx_packets += got;
  q->stats.rx_bytes += (uint64_t)got * LB_NULL_FRAME_LEN;
  return got;
#else
  uint16_t got = 0;
  while (got < n && q->ndone) {
    /* Counted when handed up (NPA_PLUGIN_F_RX_BYTES), as a device's
     * write-back is read. */
    q->stats.rx_packets++;
    q->stats.rx_bytes += q->done[q->done_head]->pkt_len;
    bufs[got++] = q->done[q->done_head];
    q->done_head = (uint16_t)((q->done_head + 1) % LB_MAX_RING);
    q->ndone--;
  }
  lb_refill(q);
#ifdef LB_HOSTILE_RX
  {
    /* A plug-in that lies about what it received (issue 9): every 50th
     * frame claims a checksum field past its end, and now and then a burst
     * with room left gains a buffer that is not the shell's. The shell must
     * drop and count each, and hand the application only its own, sane
     * frames. */
    static npa_buf foreign;
    static unsigned long frames;
    for (uint16_t i = 0; i < got; i++)
      if (++frames % 50 == 0) {
        bufs[i]->ol_flags = NPA_BUF_OL_RX_CSUM_PARTIAL;
        bufs[i]->csum_start = 20;
        bufs[i]->csum_offset = (uint16_t)bufs[i]->pkt_len;
      }
    if (got > 0 && got + 1 < n && frames % 7 == 0) {
      foreign.data_off = NPA_BUF_DATA_OFF;
      bufs[got++] = &foreign;
    }
  }
#endif
  return got;
#endif
}

static uint16_t lb_tx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  const npa_services *svc = q->dev->svc;
#ifdef LB_STUCK
  uint16_t take = (uint16_t)(LB_MAX_RING - q->nheld);
  if (take > n) take = n;
  for (uint16_t i = 0; i < take; i++) {
    q->held[q->nheld++] = bufs[i];
    q->stats.tx_packets++;
    q->stats.tx_bytes += bufs[i]->pkt_len;
  }
  (void)svc;
  return take;
#elif defined(LB_NULL)
  /* Fixed cost whatever the frames hold: the byte count (software
   * counters, as NPA_PLUGIN_F_TX_BYTES promises) and one completion call
   * per burst. */
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < n; i++) bytes += bufs[i]->pkt_len;
  q->stats.tx_packets += n;
  q->stats.tx_bytes += bytes;
  q->dev->free_tx(svc->ctx, q->qid, bufs, n);
  return n;
#endif
  for (uint16_t i = 0; i < n; i++) {
    const npa_buf *tx = bufs[i];
    uint32_t len = tx->data_len;
    q->stats.tx_packets++;
    q->stats.tx_bytes += tx->pkt_len; /* every frame taken (NPA_PLUGIN_F_TX_BYTES) */
    if (tx->nb_segs != 1 || tx->next != NULL || len > q->dev->mtu + LB_ETH_OVERHEAD ||
        len > NPA_BUF_DATA_ROOM || q->nposted == 0) {
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
    q->done[(q->done_head + q->ndone) % LB_MAX_RING] = rx;
    q->ndone++;
  }
  /* Every frame is completed (sent or dropped) within the burst. */
  q->dev->free_tx(svc->ctx, q->qid, bufs, n);
  return n;
}

static uint16_t lb_tx_reap(npa_plugin_queue *q) {
  (void)q;
  return 0;
}

static const npa_pci_id ids[] = {
    {LB_VENDOR, LB_DEVICE, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
};

static const npa_plugin_ctrl_ops ctrl = {
#ifdef LB_ABI_1_0
    .struct_size = offsetof(npa_plugin_ctrl_ops, rss_set), /* 128: ABI 1.0's */
#else
    .struct_size = sizeof(npa_plugin_ctrl_ops),
#endif
    .probe = lb_probe,
    .remove = lb_remove,
    .get_caps = lb_get_caps,
    .configure = lb_configure,
    .start = lb_start,
    .stop = lb_stop,
    .queue = lb_queue,
    .link_status = lb_link_status,
    .queue_stats = lb_queue_stats,
    .quiesce = lb_quiesce,
    .set_mtu = lb_set_mtu,
#ifdef LB_RSS
    .rss_set = lb_rss_set,
#endif
};

static const npa_plugin_fast_ops fast = {
    .struct_size = sizeof(npa_plugin_fast_ops),
    .rx_burst = lb_rx_burst,
    .tx_burst = lb_tx_burst,
    .tx_reap = lb_tx_reap,
};

static const npa_plugin_info info = {
#ifdef LB_ABI_1_0
    .struct_size = offsetof(npa_plugin_info, flags), /* 72: what a 1.0 header had */
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = 0,
#else
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
#ifdef LB_HOSTILE_RX
    .flags = NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES, /* its RX count would lie */
#else
    .flags = NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES | NPA_PLUGIN_F_RX_BYTES,
#endif
#endif
#ifdef LB_HOSTILE_RX
    .name = "test_hostile_rx",
#elif defined(LB_STUCK)
    .name = "test_stuck",
#elif defined(LB_NULL)
    .name = "test_null",
#elif defined(LB_NO_RSS)
    .name = "test_norss",
#else
    .name = "test_good",
#endif
    .vendor = "npa tests",
    .version = "1.0",
    .id_table = ids,
    .id_count = sizeof(ids) / sizeof(ids[0]),
    .id_entry_size = sizeof(npa_pci_id),
    .capabilities = LB_CAPS,
    .ctrl = &ctrl,
    .fast = &fast,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *NPA_PLUGIN_ENTRY(const npa_plugin_query *q) {
  if (q == NULL || q->struct_size < sizeof(*q)) return NULL;
  return q->abi_major == NPA_PLUGIN_ABI_MAJOR ? &info : NULL;
}
