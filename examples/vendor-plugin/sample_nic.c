/* sample_nic.c — a vendor's starting point: the smallest complete npa plug-in,
 * built against the installed <npa/plugin.h> alone (docs/sdk.md). It drives a
 * made-up PCI function SAMPLE_VENDOR:SAMPLE_DEVICE as a "null" NIC: every TX
 * frame is counted and handed back at once, nothing is ever received, the link
 * is always up. Each place a real driver programs its hardware says "DEVICE:".
 *
 * What it shows, in the order the shell calls it (npa/plugin.h "Call order"):
 *   npa_plugin_entry  the one exported symbol: refuses another ABI major,
 *                     returns static tables (version, ID table, ops)
 *   probe / remove    take the device (map BAR 0), release everything
 *   get_caps          what the device can do (the shell checks it)
 *   configure         apply the guest's configuration while stopped
 *   start / stop      enable / disable; stop hands every buffer back
 *   queue             the per-queue context the fast ops get
 *   rx/tx_burst       the fast path: no locks, no allocation, no logging
 *   link_status, queue_stats
 * Build (either):
 *   cmake -S . -B build -DCMAKE_PREFIX_PATH=/usr && cmake --build build
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags npa-plugin) \
 *      sample_nic.c -o npa_plugin_sample_nic.so
 * Check:   npa-conform --abi-only ./npa_plugin_sample_nic.so
 * Install: into the directory `pkg-config --variable=plugindir npa-plugin`
 *          names, owned by root and not group/world-writable (the shell's
 *          loader refuses anything else). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <npa/plugin.h>

/* Replace with your function's IDs (the shell picks the most specific match
 * of every installed plug-in's table). */
#define SAMPLE_VENDOR 0x1d0f
#define SAMPLE_DEVICE 0x5a00
#define SAMPLE_MAX_QP 4

struct npa_plugin_queue {
  struct sample_dev *dev;
  uint16_t qid;
  npa_plugin_qstats stats; /* written by the queue's owning thread only */
};

typedef struct sample_dev {
  const npa_services *svc; /* valid from probe until remove returns */
  volatile void *bar0;     /* DEVICE: your registers */
  uint64_t bar0_len;
  uint16_t nb_qp;
  int started;
  npa_plugin_queue q[SAMPLE_MAX_QP];
} sample_dev;

/* npa_plugin_dev is opaque to the shell: ours is a sample_dev. */
static sample_dev *D(npa_plugin_dev *d) { return (sample_dev *)d; }

static void say(const npa_services *svc, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  svc->log(svc->ctx, level, fmt, ap);
  va_end(ap);
}

static int sample_probe(const npa_services *svc, const npa_device_info *info,
                        npa_plugin_dev **out) {
  if (info->vendor != SAMPLE_VENDOR || info->device != SAMPLE_DEVICE) return -ENODEV;
  if (!(info->num_bars_mappable & 1u)) return -ENODEV;
  sample_dev *d = calloc(1, sizeof(*d));
  if (d == NULL) return -ENOMEM;
  d->svc = svc;
  int rc = svc->bar_map(svc->ctx, 0, &d->bar0, &d->bar0_len);
  if (rc < 0) {
    free(d);
    return rc;
  }
  /* DEVICE: reset the function, read its MAC and limits here. */
  say(svc, NPA_LOG_INFO, "sample_nic probed at %s", info->pci_address);
  *out = (npa_plugin_dev *)d;
  return 0;
}

static void sample_remove(npa_plugin_dev *dev) {
  /* DEVICE: free rings (dma_free) and disable MSI-X (irq_setup(0)). */
  free(D(dev));
}

static int sample_get_caps(npa_plugin_dev *dev, npa_dev_caps *caps) {
  (void)dev;
  npa_dev_caps k;
  memset(&k, 0, sizeof(k));
  k.struct_size = sizeof(k);
  k.max_queue_pairs = SAMPLE_MAX_QP;
  k.min_ring_size = 64;
  k.max_ring_size = 4096;
  k.max_mtu = 9000;
  k.offloads = NPA_CAP_MULTIQUEUE;
  /* Never write past the caller's struct_size: an older shell's is smaller. */
  size_t n = caps->struct_size < sizeof(k) ? caps->struct_size : sizeof(k);
  memcpy(caps, &k, n);
  caps->struct_size = (uint32_t)n;
  return 0;
}

static int sample_configure(npa_plugin_dev *dev, const npa_dev_config *cfg) {
  sample_dev *d = D(dev);
  if (d->started) return -EBUSY;
  if (cfg->nb_queue_pairs < 1 || cfg->nb_queue_pairs > SAMPLE_MAX_QP) return -EINVAL;
  if (cfg->ring_size < 64 || cfg->ring_size > 4096 || (cfg->ring_size & (cfg->ring_size - 1)))
    return -EINVAL;
  if (cfg->offloads & ~NPA_CAP_MULTIQUEUE) return -EINVAL;
  /* DEVICE: allocate rings with dma_alloc and program cfg->mac and cfg->mtu. */
  d->nb_qp = cfg->nb_queue_pairs;
  for (uint16_t i = 0; i < d->nb_qp; i++) {
    d->q[i].dev = d;
    d->q[i].qid = i;
  }
  return 0;
}

static int sample_start(npa_plugin_dev *dev) {
  if (D(dev)->nb_qp == 0) return -EINVAL; /* not configured */
  /* DEVICE: post RX buffers (buf_alloc) and enable RX/TX. */
  D(dev)->started = 1;
  return 0;
}

static int sample_stop(npa_plugin_dev *dev) {
  /* DEVICE: disable RX/TX, wait for DMA to stop, buf_free every posted buffer. */
  D(dev)->started = 0;
  return 0;
}

static npa_plugin_queue *sample_queue(npa_plugin_dev *dev, uint16_t qid) {
  sample_dev *d = D(dev);
  return d->started && qid < d->nb_qp ? &d->q[qid] : NULL;
}

static int sample_link(npa_plugin_dev *dev, npa_link_status *out) {
  (void)dev;
  if (out->struct_size < sizeof(*out)) return -EINVAL;
  out->up = 1; /* DEVICE: read the link register */
  out->speed_mbps = 10000;
  out->full_duplex = 1;
  return 0;
}

static int sample_stats(npa_plugin_dev *dev, uint16_t qid, npa_plugin_qstats *out) {
  sample_dev *d = D(dev);
  if (qid >= d->nb_qp || out->struct_size < sizeof(*out)) return -EINVAL;
  *out = d->q[qid].stats;
  out->struct_size = sizeof(*out);
  return 0;
}

static uint16_t sample_rx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  (void)q; (void)bufs; (void)n;
  return 0; /* DEVICE: hand up completed RX descriptors, refill from buf_alloc */
}

static uint16_t sample_tx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  /* DEVICE: write descriptors and ring the doorbell once; free frames when the
   * device reports them done. The null device is done at once. */
  for (uint16_t i = 0; i < n; i++) {
    q->stats.tx_packets++;
    q->stats.tx_bytes += bufs[i]->pkt_len;
  }
  /* TX completions go through buf_free_tx where the shell has it (ABI 1.1,
   * NPA_PLUGIN_F_TX_FREE below): the shell then counts per burst. Pick the
   * call once at probe in a real driver; the null device looks it up here. */
  if (n > 0) npa_services_tx_free(q->dev->svc)(q->dev->svc->ctx, q->qid, bufs, n);
  return n;
}

static const npa_pci_id sample_ids[] = {
    {SAMPLE_VENDOR, SAMPLE_DEVICE, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
};

static const npa_plugin_ctrl_ops sample_ctrl = {
    .struct_size = sizeof(npa_plugin_ctrl_ops),
    .probe = sample_probe,
    .remove = sample_remove,
    .get_caps = sample_get_caps,
    .configure = sample_configure,
    .start = sample_start,
    .stop = sample_stop,
    .queue = sample_queue,
    .link_status = sample_link,
    .queue_stats = sample_stats,
};

static const npa_plugin_fast_ops sample_fast = {
    .struct_size = sizeof(npa_plugin_fast_ops),
    .rx_burst = sample_rx_burst,
    .tx_burst = sample_tx_burst,
};

static const npa_plugin_info sample_info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = "sample_nic",
    .vendor = "Example Networks",
    .version = "0.1",
    .id_table = sample_ids,
    .id_count = sizeof(sample_ids) / sizeof(sample_ids[0]),
    .id_entry_size = sizeof(npa_pci_id),
    .capabilities = NPA_CAP_MULTIQUEUE,
    .ctrl = &sample_ctrl,
    .fast = &sample_fast,
    .flags = NPA_PLUGIN_F_TX_FREE, /* every TX frame back through buf_free_tx */
};

NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q) {
  if (q == NULL || q->struct_size < sizeof(*q) || q->abi_major != NPA_PLUGIN_ABI_MAJOR)
    return NULL; /* a shell of another major: refuse it */
  return &sample_info;
}
