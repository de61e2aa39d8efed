/* vnet_ctrl.c — control ops of the virtio_net plug-in: VIRTIO 1.x driver
 * initialisation (3.1.1), virtqueue setup (4.1.5.1.3), the control virtqueue
 * (5.1.6.5) and the lifecycle of plugin.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vnet.h"

/* Features we accept when offered. VERSION_1 and ACCESS_PLATFORM are
 * required: without ACCESS_PLATFORM the device ignores the IOMMU and DMAs to
 * IOVAs as if they were guest-physical addresses (VIRTIO 1.1 section 6,
 * reserved feature bits; found in the VFIO lab, docs/vfio-lab.md). */
#define VNET_REQUIRED (VNET_BIT(VIRTIO_F_VERSION_1) | VNET_BIT(VIRTIO_F_ACCESS_PLATFORM))
#define VNET_WANTED                                                                       \
  (VNET_REQUIRED | VNET_BIT(VIRTIO_NET_F_CSUM) | VNET_BIT(VIRTIO_NET_F_GUEST_CSUM) |     \
   VNET_BIT(VIRTIO_NET_F_MTU) | VNET_BIT(VIRTIO_NET_F_MAC) |                              \
   VNET_BIT(VIRTIO_NET_F_HOST_TSO4) | VNET_BIT(VIRTIO_NET_F_HOST_TSO6) |                  \
   VNET_BIT(VIRTIO_NET_F_MRG_RXBUF) | VNET_BIT(VIRTIO_NET_F_STATUS) |                     \
   VNET_BIT(VIRTIO_NET_F_CTRL_VQ) | VNET_BIT(VIRTIO_NET_F_MQ) |                           \
   VNET_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | VNET_BIT(VIRTIO_NET_F_SPEED_DUPLEX))

static int is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* 3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK. */
static int vnet_init_device(struct npa_plugin_dev *d) {
  int rc = vp_reset(&d->vp);
  if (rc < 0) return rc;
  vp_status_or(&d->vp, VIRTIO_STATUS_ACKNOWLEDGE);
  vp_status_or(&d->vp, VIRTIO_STATUS_DRIVER);
  uint64_t offered = vp_device_features(&d->vp);
  if ((offered & VNET_REQUIRED) != VNET_REQUIRED) {
    vnet_log(d, NPA_LOG_ERROR,
             "%s: device lacks %s%s (offered 0x%llx); a modern device with "
             "iommu_platform=on is required",
             d->info.pci_address,
             offered & VNET_BIT(VIRTIO_F_VERSION_1) ? "" : "VIRTIO_F_VERSION_1 ",
             offered & VNET_BIT(VIRTIO_F_ACCESS_PLATFORM) ? "" : "VIRTIO_F_ACCESS_PLATFORM",
             (unsigned long long)offered);
    vp_status_or(&d->vp, VIRTIO_STATUS_FAILED);
    return -ENODEV;
  }
  uint64_t want = offered & VNET_WANTED;
  /* 5.1.3.1: MQ and CTRL_MAC_ADDR depend on CTRL_VQ; TSO needs CSUM. */
  if (!(want & VNET_BIT(VIRTIO_NET_F_CTRL_VQ)))
    want &= ~(VNET_BIT(VIRTIO_NET_F_MQ) | VNET_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR));
  if (!(want & VNET_BIT(VIRTIO_NET_F_CSUM)))
    want &= ~(VNET_BIT(VIRTIO_NET_F_HOST_TSO4) | VNET_BIT(VIRTIO_NET_F_HOST_TSO6));
  vp_set_driver_features(&d->vp, want);
  vp_status_or(&d->vp, VIRTIO_STATUS_FEATURES_OK);
  /* 3.1.1 step 6: the device may refuse the subset; re-read FEATURES_OK. */
  if (!(vp_status(&d->vp) & VIRTIO_STATUS_FEATURES_OK)) {
    vnet_log(d, NPA_LOG_ERROR, "%s: device refused features 0x%llx", d->info.pci_address,
             (unsigned long long)want);
    vp_status_or(&d->vp, VIRTIO_STATUS_FAILED);
    return -EIO;
  }
  d->features = want;
  d->needs_init = 0;
  return 0;
}

/* Read what the device offers and check it is sane (probe only). */
static int vnet_discover(struct npa_plugin_dev *d) {
  int rc;
  memset(d->perm_mac, 0, 6);
  if (vnet_has(d, VIRTIO_NET_F_MAC) &&
      (rc = vp_read_device_cfg(&d->vp, VNET_CFG_MAC, d->perm_mac, 6)) < 0)
    return rc;
  d->dev_max_qp = 1;
  if (vnet_has(d, VIRTIO_NET_F_MQ)) {
    uint16_t m = 0;
    if ((rc = vp_read_device_cfg(&d->vp, VNET_CFG_MAX_VQ_PAIRS, &m, 2)) < 0) return rc;
    /* 5.1.4: 1..0x8000 when MQ is offered. */
    if (m < 1 || m > 0x8000) {
      vnet_log(d, NPA_LOG_ERROR, "max_virtqueue_pairs %u out of range", m);
      return -EIO;
    }
    d->dev_max_qp = m;
  }
  d->max_qp = d->dev_max_qp < VNET_MAX_QP ? d->dev_max_qp : VNET_MAX_QP;
  d->has_cvq = vnet_has(d, VIRTIO_NET_F_CTRL_VQ);
  uint32_t nq = vp_read16(&d->vp.common, VP_COMMON_NUMQ);
  uint32_t need = 2u * d->dev_max_qp + (d->has_cvq ? 1u : 0u);
  if (nq < need) {
    vnet_log(d, NPA_LOG_ERROR, "device has %u virtqueues, needs %u", nq, need);
    return -EIO;
  }
  d->max_ring = VNET_MAX_RING;
  for (uint16_t i = 0; i < 2 * d->max_qp; i++) {
    uint16_t s = vp_queue_size(&d->vp, i);
    if (!is_pow2(s) || s > VRING_MAX_SIZE) {
      vnet_log(d, NPA_LOG_ERROR, "virtqueue %u: queue_size %u is not a power of two in 1..32768",
               i, s);
      return -EIO;
    }
    if (s < d->max_ring) d->max_ring = s;
  }
  if (d->has_cvq) {
    uint16_t s = vp_queue_size(&d->vp, (uint16_t)(2 * d->dev_max_qp));
    if (!is_pow2(s) || s > VRING_MAX_SIZE) {
      vnet_log(d, NPA_LOG_ERROR, "control virtqueue: bad queue_size %u", s);
      return -EIO;
    }
  }
  d->max_mtu = 1500;
  if (vnet_has(d, VIRTIO_NET_F_MTU)) {
    uint16_t m = 0;
    if ((rc = vp_read_device_cfg(&d->vp, VNET_CFG_MTU, &m, 2)) < 0) return rc;
    if (m >= 68) d->max_mtu = m;
  }
  /* Without MRG_RXBUF every RX buffer must hold a whole frame (5.1.6.3.1). */
  uint32_t room = NPA_BUF_DATA_ROOM - 18;
  if (!vnet_has(d, VIRTIO_NET_F_MRG_RXBUF) && d->max_mtu > room) d->max_mtu = room;
  return 0;
}

/* vfio-pci leaves PCI_COMMAND bus mastering to the driver (as QEMU and DPDK
 * set it themselves): without it every ring access and MSI-X message of the
 * device is dropped. Memory space enable is needed for the BAR accesses. */
static int vnet_enable_bus_master(struct npa_plugin_dev *d) {
  const npa_services *s = d->svc;
  uint32_t cmd = 0;
  int rc = s->cfg_read(s->ctx, 0x04, 2, &cmd);
  if (rc < 0) return rc;
  if ((cmd & 0x6) == 0x6) return 0;
  if (s->cfg_write == NULL) return -EINVAL;
  return s->cfg_write(s->ctx, 0x04, 2, (cmd | 0x6) & 0xffff);
}

static int vnet_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out) {
  if (svc == NULL || info == NULL || out == NULL) return -EINVAL;
  /* The ABI 1.0 services table is enough: buf_free_tx (1.1) is used when present. */
  if (svc->struct_size < offsetof(npa_services, buf_free_tx) || info->struct_size < sizeof(*info))
    return -EINVAL;
  if (!svc->bar_map || !svc->cfg_read || !svc->cfg_write || !svc->dma_alloc || !svc->dma_free || !svc->buf_alloc ||
      !svc->buf_free || !svc->now_ns || !svc->sleep_us)
    return -EINVAL;
  *out = NULL;
  if (info->vendor != VIRTIO_PCI_VENDOR || info->device != VIRTIO_PCI_DEVICE_NET_MODERN)
    return -ENODEV;
  struct npa_plugin_dev *d = calloc(1, sizeof(*d));
  if (d == NULL) return -ENOMEM;
  d->svc = svc;
  d->free_tx = npa_services_tx_free(svc);
  d->info = *info;
  d->info.pci_address[sizeof(d->info.pci_address) - 1] = 0;
  for (uint16_t i = 0; i < VNET_MAX_QP; i++) {
    d->q[i].dev = d;
    d->q[i].qid = i;
    d->q[i].st.struct_size = sizeof(d->q[i].st);
  }
  int rc = vp_map(&d->vp, svc);
  if (rc == 0) rc = vnet_enable_bus_master(d);
  if (rc == 0) rc = vnet_init_device(d);
  if (rc == 0) rc = vnet_discover(d);
  if (rc < 0) {
    if (d->vp.common.base) vp_write8(&d->vp.common, VP_COMMON_STATUS, 0);
    free(d);
    return rc;
  }
  memcpy(d->mac, d->perm_mac, 6);
  d->mtu = d->max_mtu < 1500 ? d->max_mtu : 1500;
  d->state = VNET_PROBED;
  vnet_log(d, NPA_LOG_INFO,
           "%s: virtio-net features 0x%llx, %u queue pair(s), ring <= %u, mtu <= %u, mac "
           "%02x:%02x:%02x:%02x:%02x:%02x",
           d->info.pci_address, (unsigned long long)d->features, d->max_qp, d->max_ring,
           d->max_mtu, d->mac[0], d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
  *out = d;
  return 0;
}

static int vnet_get_caps(npa_plugin_dev *d, npa_dev_caps *c) {
  if (d == NULL || c == NULL || c->struct_size < sizeof(*c)) return -EINVAL;
  c->max_queue_pairs = d->max_qp;
  c->max_ring_size = d->max_ring;
  c->min_ring_size = d->max_ring < VNET_MIN_RING ? d->max_ring : VNET_MIN_RING;
  c->max_mtu = d->max_mtu;
  uint64_t o = 0;
  if (vnet_has(d, VIRTIO_NET_F_CSUM)) o |= NPA_CAP_TX_CSUM;
  if (vnet_has(d, VIRTIO_NET_F_GUEST_CSUM)) o |= NPA_CAP_RX_CSUM;
  if (vnet_has(d, VIRTIO_NET_F_HOST_TSO4) && vnet_has(d, VIRTIO_NET_F_HOST_TSO6))
    o |= NPA_CAP_TSO;
  if (d->max_qp > 1) o |= NPA_CAP_MULTIQUEUE;
  if (d->info.msix_vectors >= 2 && d->svc->irq_setup) o |= NPA_CAP_RX_INTR;
  c->offloads = o;
  memcpy(c->perm_mac, d->perm_mac, 6);
  return 0;
}

static void vnet_free_rings(struct npa_plugin_dev *d) {
  const npa_services *s = d->svc;
  for (uint16_t i = 0; i < VNET_MAX_QP; i++) {
    struct npa_plugin_queue *q = &d->q[i];
    if (q->rx_mem.vaddr) s->dma_free(s->ctx, &q->rx_mem);
    if (q->tx_mem.vaddr) s->dma_free(s->ctx, &q->tx_mem);
    memset(&q->rx_mem, 0, sizeof(q->rx_mem));
    memset(&q->tx_mem, 0, sizeof(q->tx_mem));
    vring_fini(&q->rx);
    vring_fini(&q->tx);
  }
  if (d->cvq_mem.vaddr) s->dma_free(s->ctx, &d->cvq_mem);
  if (d->cvq_buf.vaddr) s->dma_free(s->ctx, &d->cvq_buf);
  memset(&d->cvq_mem, 0, sizeof(d->cvq_mem));
  memset(&d->cvq_buf, 0, sizeof(d->cvq_buf));
  vring_fini(&d->cvq);
}

static void vnet_irq_off(struct npa_plugin_dev *d) {
  if (d->nvec && d->svc->irq_setup) d->svc->irq_setup(d->svc->ctx, 0, NULL);
  d->nvec = 0;
}

static int vnet_alloc_ring(struct npa_plugin_dev *d, vring *vq, npa_dma_mem *mem, uint16_t size,
                           uint16_t qidx) {
  uint64_t ao, uo;
  uint64_t bytes = vring_layout(size, &ao, &uo);
  mem->struct_size = sizeof(*mem);
  int rc = d->svc->dma_alloc(d->svc->ctx, bytes, 4096, mem);
  if (rc < 0 || mem->vaddr == NULL || mem->size < bytes) {
    vnet_log(d, NPA_LOG_ERROR, "virtqueue %u: dma_alloc(%llu) failed (%d)", qidx,
             (unsigned long long)bytes, rc);
    if (rc == 0 && mem->vaddr) d->svc->dma_free(d->svc->ctx, mem);
    memset(mem, 0, sizeof(*mem));
    return rc < 0 ? rc : -ENOMEM;
  }
  rc = vring_init(vq, mem, size, qidx);
  if (rc < 0) {
    d->svc->dma_free(d->svc->ctx, mem);
    memset(mem, 0, sizeof(*mem));
  }
  return rc;
}

/* Wire MSI-X: vector 0 = configuration change, then one per RX queue and,
 * when the device has enough, one per TX queue (4.1.5.1.2). */
static int vnet_irq_setup(struct npa_plugin_dev *d) {
  uint32_t have = d->info.msix_vectors;
  if (have < 2 || d->svc->irq_setup == NULL) {
    vnet_log(d, NPA_LOG_ERROR, "RX interrupts asked for, but the device has %u MSI-X vectors",
             have);
    return -ENOTSUP;
  }
  int per_tx = have >= 1u + 2u * d->nb_qp;
  uint32_t nvec = per_tx ? 1u + 2u * d->nb_qp : (have < 1u + d->nb_qp ? have : 1u + d->nb_qp);
  for (uint32_t i = 0; i < nvec; i++) d->efds[i] = -1;
  int rc = d->svc->irq_setup(d->svc->ctx, nvec, d->efds);
  if (rc < 0) {
    vnet_log(d, NPA_LOG_ERROR, "irq_setup(%u) failed (%d)", nvec, rc);
    return rc;
  }
  d->nvec = nvec;
  for (uint16_t i = 0; i < d->nb_qp; i++) {
    d->q[i].rx_vec = per_tx ? (uint16_t)(1 + 2 * i) : (uint16_t)(1 + i % (nvec - 1));
    d->q[i].tx_vec = per_tx ? (uint16_t)(2 + 2 * i) : VIRTIO_MSI_NO_VECTOR;
  }
  return 0;
}

static int vnet_configure(npa_plugin_dev *d, const npa_dev_config *cfg) {
  if (d == NULL || cfg == NULL || cfg->struct_size < sizeof(*cfg)) return -EINVAL;
  if (d->state == VNET_STARTED) return -EINVAL;
  if (cfg->nb_queue_pairs < 1 || cfg->nb_queue_pairs > d->max_qp) return -EINVAL;
  npa_dev_caps caps = {.struct_size = sizeof(caps)};
  vnet_get_caps(d, &caps);
  if (!is_pow2(cfg->ring_size) || cfg->ring_size < caps.min_ring_size ||
      cfg->ring_size > caps.max_ring_size)
    return -EINVAL;
  if (cfg->mtu < 68 || cfg->mtu > d->max_mtu) return -EINVAL;
  if (cfg->offloads & ~caps.offloads) return -ENOTSUP;
  if (cfg->rx_intr && !(caps.offloads & NPA_CAP_RX_INTR)) return -ENOTSUP;
  if (cfg->vlan_filter_count != 0) return -ENOTSUP;
  static const uint8_t zero[6];
  int want_mac = memcmp(cfg->mac, zero, 6) != 0 && memcmp(cfg->mac, d->perm_mac, 6) != 0;
  if (want_mac && !vnet_has(d, VIRTIO_NET_F_CTRL_MAC_ADDR)) return -ENOTSUP;

  /* Start from a clean device every time: configure after stop/reset or a
   * second configure both re-run 3.1.1 and rebuild the rings. */
  vnet_irq_off(d);
  vnet_free_rings(d);
  d->state = VNET_PROBED;
  int rc = vnet_init_device(d);
  if (rc < 0) return rc;
  d->nb_qp = cfg->nb_queue_pairs;
  d->ring_size = cfg->ring_size;
  d->mtu = cfg->mtu;
  d->offloads = cfg->offloads;
  d->rx_intr = cfg->rx_intr != 0;
  memcpy(d->mac, want_mac ? cfg->mac : d->perm_mac, 6);
  d->mac_set_pending = want_mac;
  for (uint16_t i = 0; i < VNET_MAX_QP; i++) {
    d->q[i].rx_vec = d->q[i].tx_vec = VIRTIO_MSI_NO_VECTOR;
    d->q[i].quiesced = 0;
    d->q[i].broken_logged = 0;
  }

  for (uint16_t i = 0; i < d->nb_qp && rc == 0; i++) {
    rc = vnet_alloc_ring(d, &d->q[i].rx, &d->q[i].rx_mem, d->ring_size, (uint16_t)(2 * i));
    if (rc == 0)
      rc = vnet_alloc_ring(d, &d->q[i].tx, &d->q[i].tx_mem, d->ring_size, (uint16_t)(2 * i + 1));
  }
  uint16_t cvq_idx = (uint16_t)(2 * d->dev_max_qp);
  if (rc == 0 && d->has_cvq) {
    uint16_t s = vp_queue_size(&d->vp, cvq_idx);
    if (s > VNET_CVQ_SIZE) s = VNET_CVQ_SIZE;
    rc = vnet_alloc_ring(d, &d->cvq, &d->cvq_mem, s, cvq_idx);
    if (rc == 0) {
      d->cvq_buf.struct_size = sizeof(d->cvq_buf);
      rc = d->svc->dma_alloc(d->svc->ctx, 4096, 64, &d->cvq_buf);
      if (rc == 0 && d->cvq_buf.vaddr == NULL) rc = -ENOMEM;
      if (rc < 0) {
        vnet_log(d, NPA_LOG_ERROR, "control buffer: dma_alloc failed (%d)", rc);
        memset(&d->cvq_buf, 0, sizeof(d->cvq_buf));
      }
    }
  }
  if (rc == 0 && d->rx_intr) rc = vnet_irq_setup(d);
  if (rc == 0 && d->nvec) {
    vp_write16(&d->vp.common, VP_COMMON_MSIX, 0);
    if (vp_read16(&d->vp.common, VP_COMMON_MSIX) != 0) {
      vnet_log(d, NPA_LOG_ERROR, "device refused MSI-X vector 0 for config changes");
      rc = -EIO;
    }
  }
  /* 4.1.5.1.3: program each queue, then enable it; before DRIVER_OK. */
  for (uint16_t i = 0; i < d->nb_qp && rc == 0; i++) {
    struct npa_plugin_queue *q = &d->q[i];
    rc = vp_queue_setup(&d->vp, q->rx.qidx, q->rx.size, q->rx.desc_iova, q->rx.avail_iova,
                        q->rx.used_iova, q->rx_vec, &q->rx.notify);
    if (rc == 0)
      rc = vp_queue_setup(&d->vp, q->tx.qidx, q->tx.size, q->tx.desc_iova, q->tx.avail_iova,
                          q->tx.used_iova, q->tx_vec, &q->tx.notify);
    if (rc == 0) {
      vp_queue_enable(&d->vp, q->rx.qidx);
      vp_queue_enable(&d->vp, q->tx.qidx);
      /* TX completions are reaped by polling; RX interrupts start disarmed
       * and rx_intr_enable arms them. */
      vring_set_no_interrupt(&q->tx, 1);
      vring_set_no_interrupt(&q->rx, 1);
    }
  }
  if (rc == 0 && d->has_cvq) {
    rc = vp_queue_setup(&d->vp, cvq_idx, d->cvq.size, d->cvq.desc_iova, d->cvq.avail_iova,
                        d->cvq.used_iova, VIRTIO_MSI_NO_VECTOR, &d->cvq.notify);
    if (rc == 0) {
      vp_queue_enable(&d->vp, cvq_idx);
      vring_set_no_interrupt(&d->cvq, 1);
    }
  }
  if (rc < 0) {
    vp_reset(&d->vp);
    d->needs_init = 1;
    vnet_irq_off(d);
    vnet_free_rings(d);
    return rc;
  }
  d->state = VNET_CONFIGURED;
  return 0;
}

/* 5.1.6.5: one synchronous command on the control virtqueue. */
static int vnet_ctrl_cmd(struct npa_plugin_dev *d, uint8_t cls, uint8_t cmd, const void *data,
                         uint32_t len) {
  if (!d->has_cvq || d->cvq_buf.vaddr == NULL || len > 1024) return -ENOTSUP;
  uint8_t *b = d->cvq_buf.vaddr;
  b[0] = cls;
  b[1] = cmd;
  memcpy(b + 2, data, len);
  volatile uint8_t *ack = b + 2048;
  *ack = 0xff;
  vring_seg segs[2] = {{d->cvq_buf.iova, 2 + len, 0},
                       {d->cvq_buf.iova + 2048, 1, VRING_DESC_F_WRITE}};
  if (vring_add(&d->cvq, segs, 2, b) < 0) return -EIO;
  vring_publish(&d->cvq);
  vring_kick(&d->cvq); /* control commands are rare: always ring */
  uint64_t t0 = d->svc->now_ns(d->svc->ctx);
  uint32_t ulen;
  while (vring_get_used(&d->cvq, &ulen) == NULL) {
    if (d->cvq.broken || d->svc->now_ns(d->svc->ctx) - t0 > 1000000000ull) {
      vnet_log(d, NPA_LOG_ERROR, "control command %u/%u: no answer from the device", cls, cmd);
      return -ETIMEDOUT;
    }
    d->svc->sleep_us(d->svc->ctx, 20);
  }
  if (*ack != VIRTIO_NET_OK) {
    vnet_log(d, NPA_LOG_ERROR, "control command %u/%u: device answered %u", cls, cmd, *ack);
    return -EIO;
  }
  return 0;
}

static void vnet_free_cookie(void *arg, void *cookie) {
  struct npa_plugin_queue *q = arg;
  npa_buf *b = cookie;
  q->dev->svc->buf_free(q->dev->svc->ctx, q->qid, &b, 1);
}

/* A TX frame the ring still held: a TX completion (plugin.h, buf_free_tx). */
static void vnet_free_tx_cookie(void *arg, void *cookie) {
  struct npa_plugin_queue *q = arg;
  npa_buf *b = cookie;
  q->dev->free_tx(q->dev->svc->ctx, q->qid, &b, 1);
}

/* After a device reset (no DMA in flight, 4.1.4.3.2): every buffer the rings
 * still hold goes back to its queue's pool. */
static void vnet_reclaim_all(struct npa_plugin_dev *d) {
  for (uint16_t i = 0; i < d->nb_qp; i++) {
    struct npa_plugin_queue *q = &d->q[i];
    if (q->rx.size) vring_take_all(&q->rx, vnet_free_cookie, q);
    if (q->tx.size) vring_take_all(&q->tx, vnet_free_tx_cookie, q);
  }
  if (d->cvq.size) vring_rewind(&d->cvq);
}

static int vnet_stop(npa_plugin_dev *d);

static int vnet_start(npa_plugin_dev *d) {
  if (d == NULL || d->state != VNET_CONFIGURED) return -EINVAL;
  for (uint16_t i = 0; i < d->nb_qp; i++) vnet_rx_refill(&d->q[i]);
  /* 3.1.1 step 8. */
  vp_status_or(&d->vp, VIRTIO_STATUS_DRIVER_OK);
  uint8_t st = vp_status(&d->vp);
  int rc = 0;
  if (st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED) ||
      !(st & VIRTIO_STATUS_DRIVER_OK)) {
    vnet_log(d, NPA_LOG_ERROR, "device did not accept DRIVER_OK (status 0x%x)", st);
    rc = -EIO;
  }
  d->state = VNET_STARTED;
  if (rc == 0 && vnet_has(d, VIRTIO_NET_F_MQ)) {
    /* 5.1.6.5.5: only receiveq1/transmitq1 are used until VQ_PAIRS_SET. */
    uint16_t n = d->nb_qp;
    rc = vnet_ctrl_cmd(d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &n, 2);
  }
  if (rc == 0 && d->mac_set_pending) {
    rc = vnet_ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, d->mac, 6);
    if (rc == 0) d->mac_set_pending = 0;
  }
  if (rc < 0) {
    vnet_stop(d);
    return rc;
  }
  for (uint16_t i = 0; i < d->nb_qp; i++)
    if (vring_kick_needed(&d->q[i].rx)) vring_kick(&d->q[i].rx);
  return 0;
}

static int vnet_stop(npa_plugin_dev *d) {
  if (d == NULL) return -EINVAL;
  if (d->state != VNET_STARTED) return 0;
  /* Reset first: after device_status reads 0 the device holds no buffer and
   * does no DMA, so the rings can be emptied safely (4.1.4.3.2). */
  int rc = vp_reset(&d->vp);
  vnet_reclaim_all(d);
  vnet_irq_off(d);
  d->needs_init = 1;
  d->state = VNET_PROBED;
  return rc;
}

static void vnet_remove(npa_plugin_dev *d) {
  if (d == NULL) return;
  vnet_stop(d);
  vp_reset(&d->vp);
  vnet_irq_off(d);
  vnet_free_rings(d);
  free(d);
}

static npa_plugin_queue *vnet_queue(npa_plugin_dev *d, uint16_t qid) {
  if (d == NULL || d->state != VNET_STARTED || qid >= d->nb_qp) return NULL;
  return &d->q[qid];
}

static int vnet_link_status(npa_plugin_dev *d, npa_link_status *out) {
  if (d == NULL || out == NULL || out->struct_size < sizeof(*out)) return -EINVAL;
  out->up = 1;
  out->speed_mbps = 0;
  out->full_duplex = 1;
  if (vp_status(&d->vp) & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)) out->up = 0;
  if (vnet_has(d, VIRTIO_NET_F_STATUS)) {
    uint16_t s = 0;
    int rc = vp_read_device_cfg(&d->vp, VNET_CFG_STATUS, &s, 2);
    if (rc < 0) return rc;
    if (!(s & VIRTIO_NET_S_LINK_UP)) out->up = 0;
  }
  if (vnet_has(d, VIRTIO_NET_F_SPEED_DUPLEX)) {
    uint32_t sp = 0;
    uint8_t dup = 1;
    if (vp_read_device_cfg(&d->vp, VNET_CFG_SPEED, &sp, 4) == 0 && sp != 0xffffffffu)
      out->speed_mbps = sp;
    if (vp_read_device_cfg(&d->vp, VNET_CFG_DUPLEX, &dup, 1) == 0) out->full_duplex = dup == 1;
  }
  return 0;
}

static int vnet_queue_stats(npa_plugin_dev *d, uint16_t qid, npa_plugin_qstats *out) {
  if (d == NULL || out == NULL || out->struct_size < sizeof(*out) || qid >= d->max_qp)
    return -EINVAL;
  *out = d->q[qid].st;
  out->struct_size = sizeof(*out);
  return 0;
}

static int vnet_quiesce(npa_plugin_dev *d, uint32_t timeout_us) {
  if (d == NULL || d->state != VNET_STARTED) return -EINVAL;
  for (uint16_t i = 0; i < d->nb_qp; i++) d->q[i].quiesced = 1;
  uint64_t t0 = d->svc->now_ns(d->svc->ctx);
  for (;;) {
    uint32_t busy = 0;
    for (uint16_t i = 0; i < d->nb_qp; i++) {
      vnet_tx_reap(&d->q[i]);
      busy += vring_in_flight(&d->q[i].tx);
    }
    if (busy == 0) return 0;
    uint64_t waited = (d->svc->now_ns(d->svc->ctx) - t0) / 1000;
    if (waited >= timeout_us) return -EAGAIN;
    uint64_t step = timeout_us - waited < 50 ? timeout_us - waited : 50;
    d->svc->sleep_us(d->svc->ctx, (uint32_t)step);
  }
}

static int vnet_reset(npa_plugin_dev *d) {
  if (d == NULL || d->state == VNET_STARTED) return -EINVAL;
  int rc = vp_reset(&d->vp);
  d->needs_init = 1;
  d->state = VNET_PROBED;
  vnet_irq_off(d);
  return rc;
}

static int vnet_set_mac(npa_plugin_dev *d, const uint8_t mac[6]) {
  if (d == NULL || mac == NULL) return -EINVAL;
  if (mac[0] & 1) return -EINVAL; /* multicast is not a station address */
  if (!vnet_has(d, VIRTIO_NET_F_CTRL_MAC_ADDR)) return memcmp(mac, d->mac, 6) ? -ENOTSUP : 0;
  memcpy(d->mac, mac, 6);
  if (d->state != VNET_STARTED) {
    d->mac_set_pending = memcmp(mac, d->perm_mac, 6) != 0;
    return 0;
  }
  return vnet_ctrl_cmd(d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6);
}

static int vnet_set_mtu(npa_plugin_dev *d, uint32_t mtu) {
  if (d == NULL || mtu < 68 || mtu > d->max_mtu) return -EINVAL;
  d->mtu = mtu; /* the device has no MTU register: the limit is ours */
  return 0;
}

static int vnet_irq_handler(npa_plugin_dev *d, uint32_t vec) {
  if (d == NULL || vec >= d->nvec) return -EINVAL;
  /* Vector 0 is the configuration-change vector (4.1.5.3): the only state
   * it announces that we cache is none — link_status re-reads the config —
   * so there is nothing to do but check the device still works. */
  if (vp_status(&d->vp) & VIRTIO_STATUS_NEEDS_RESET) {
    vnet_log(d, NPA_LOG_ERROR, "%s: device needs reset", d->info.pci_address);
    return -EIO;
  }
  return 0;
}

const npa_plugin_ctrl_ops vnet_ctrl_ops = {
    .struct_size = sizeof(npa_plugin_ctrl_ops),
    .probe = vnet_probe,
    .remove = vnet_remove,
    .get_caps = vnet_get_caps,
    .configure = vnet_configure,
    .start = vnet_start,
    .stop = vnet_stop,
    .queue = vnet_queue,
    .link_status = vnet_link_status,
    .queue_stats = vnet_queue_stats,
    .quiesce = vnet_quiesce,
    .reset = vnet_reset,
    .set_mac = vnet_set_mac,
    .set_mtu = vnet_set_mtu,
    .irq_handler = vnet_irq_handler,
};
