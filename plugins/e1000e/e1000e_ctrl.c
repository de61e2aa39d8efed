/*
 * plugins/e1000e/e1000e_ctrl.c — control path of the Intel 82574L plug-in:
 * the control ops (probe, configure/start/quiesce/stop, reset, stats...),
 * ring memory, MSI-X routing, and the one exported symbol. The register-level
 * reset, link and MAC steps they share are in e1000e_hw.c. Built against
 * include/npa/plugin.h alone.
 *
 * Datasheet: "Intel 82574 GbE Controller Family Datasheet" rev 3.4.
 *   4.6      software initialisation sequence (reset, link, RX, TX)
 *   7.1/7.2  receive / transmit descriptors
 *   7.4      interrupts (MSI-X: IVAR, EIAC, IAM, CTRL_EXT.EIAME/PBA_CLR)
 *   10.2     register reference
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/e1000e/e1000e.h"

#define PCI_CFG_VENDOR 0x00u
#define PCI_CFG_COMMAND 0x04u
#define PCI_COMMAND_MEMORY 0x2u
#define PCI_COMMAND_MASTER 0x4u

static int services_ok(const npa_services *svc) {
  /* The ABI 1.0 table is enough: buf_free_tx (1.1) is used when present. */
  return svc != NULL && svc->struct_size >= offsetof(npa_services, buf_free_tx) && svc->bar_map &&
         svc->cfg_read &&
         svc->cfg_write && svc->dma_alloc && svc->dma_free && svc->buf_alloc && svc->buf_free &&
         svc->log && svc->now_ns && svc->sleep_us;
}

static const npa_pci_id e1k_ids[] = {
    {0x8086, 0x10d3, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0}, /* 82574L */
};

static int e1k_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out) {
  if (out == NULL || !services_ok(svc) || info == NULL ||
      info->struct_size < offsetof(npa_device_info, pci_address))
    return -EINVAL;
  *out = NULL;
  if (info->vendor != e1k_ids[0].vendor || info->device != e1k_ids[0].device) return -ENODEV;
  e1k_dev *d = calloc(1, sizeof(*d));
  if (d == NULL) return -ENOMEM;
  d->svc = svc;
  d->free_tx = npa_services_tx_free(svc);
  for (uint32_t v = 0; v < E1K_NUM_VECTORS; v++) d->efds[v] = -1;
  if (info->struct_size >= sizeof(npa_device_info))
    snprintf(d->name, sizeof(d->name), "e1000e %.31s", info->pci_address);
  else
    snprintf(d->name, sizeof(d->name), "e1000e");
  d->msix_vectors = info->msix_vectors;

  /* The shell's info is a claim; config space is what the device says. */
  uint32_t id = 0;
  int rc = svc->cfg_read(svc->ctx, PCI_CFG_VENDOR, 4, &id);
  if (rc != 0 || (id & 0xffff) != 0x8086 || (id >> 16) != 0x10d3) {
    e1k_log(d, NPA_LOG_ERROR, "config space says %08x (rc %d), not 8086:10d3", id, rc);
    free(d);
    return rc != 0 ? rc : -ENODEV;
  }
  uint32_t cmd = 0;
  if ((rc = svc->cfg_read(svc->ctx, PCI_CFG_COMMAND, 2, &cmd)) != 0 ||
      (rc = svc->cfg_write(svc->ctx, PCI_CFG_COMMAND, 2,
                           cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) != 0) {
    e1k_log(d, NPA_LOG_ERROR, "cannot enable memory space and bus mastering: %d", rc);
    free(d);
    return rc;
  }
  volatile void *bar = NULL;
  uint64_t len = 0;
  rc = svc->bar_map(svc->ctx, 0, &bar, &len);
  if (rc != 0 || bar == NULL || len < E1K_MMIO_MIN) {
    e1k_log(d, NPA_LOG_ERROR, "BAR0 map failed (rc %d, len 0x%llx, need 0x%x)", rc,
            (unsigned long long)len, E1K_MMIO_MIN);
    free(d);
    return rc != 0 ? rc : -ENODEV;
  }
  d->bar = (volatile uint8_t *)bar;
  d->bar_len = len;
  if (e1k_rd32(d->bar, E1K_STATUS) == 0xffffffffu) {
    e1k_log(d, NPA_LOG_ERROR, "BAR0 reads all-ones: device not responding");
    free(d);
    return -ENODEV;
  }
  if ((rc = e1k_global_reset(d)) != 0 || (rc = e1k_read_perm_mac(d)) != 0) {
    if (rc == -EIO) e1k_log(d, NPA_LOG_ERROR, "no valid MAC in RAL0/RAH0 or EEPROM");
    free(d);
    return rc;
  }
  memcpy(d->mac, d->perm_mac, 6);
  e1k_link_setup(d, 2000000);
  d->mtu = E1K_MAX_MTU;
  d->link_up_last = (e1k_rd32(d->bar, E1K_STATUS) & E1K_STATUS_LU) != 0;
  e1k_log(d, NPA_LOG_INFO, "probed: MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s, %u MSI-X vectors",
          d->perm_mac[0], d->perm_mac[1], d->perm_mac[2], d->perm_mac[3], d->perm_mac[4],
          d->perm_mac[5], d->link_up_last ? "up" : "down", d->msix_vectors);
  *out = (npa_plugin_dev *)d;
  return 0;
}

static void free_queue_rings(e1k_dev *d, npa_plugin_queue *q) {
  if (q->rx_mem_ok) d->svc->dma_free(d->svc->ctx, &q->rx_mem);
  if (q->tx_mem_ok) d->svc->dma_free(d->svc->ctx, &q->tx_mem);
  q->rx_mem_ok = q->tx_mem_ok = 0;
  free(q->rx_bufs);
  free(q->tx_bufs);
  q->rx_bufs = q->tx_bufs = NULL;
  q->rx_ring = NULL;
  q->tx_ring = NULL;
  q->nb_desc = 0;
}

static void free_rings(e1k_dev *d) {
  for (uint32_t i = 0; i < E1K_MAX_QP; i++) free_queue_rings(d, &d->q[i]);
}

/* Queue q's descriptor rings and buffer arrays for n descriptors. */
static int alloc_queue_rings(e1k_dev *d, npa_plugin_queue *q, uint16_t n) {
  uint64_t bytes = (uint64_t)n * 16u;
  /* 10.2.5.x RDBAL: 16-byte aligned base (128 for best performance). */
  q->rx_mem.struct_size = q->tx_mem.struct_size = sizeof(npa_dma_mem);
  int rc = d->svc->dma_alloc(d->svc->ctx, bytes, 4096, &q->rx_mem);
  if (rc == 0) q->rx_mem_ok = 1;
  if (rc == 0 && (rc = d->svc->dma_alloc(d->svc->ctx, bytes, 4096, &q->tx_mem)) == 0)
    q->tx_mem_ok = 1;
  if (rc == 0 && (q->rx_mem.size < bytes || q->tx_mem.size < bytes || !q->rx_mem.vaddr ||
                  !q->tx_mem.vaddr || (q->rx_mem.iova & 127) || (q->tx_mem.iova & 127)))
    rc = -EINVAL;
  q->rx_bufs = calloc(n, sizeof(npa_buf *));
  q->tx_bufs = calloc(n, sizeof(npa_buf *));
  if (rc == 0 && (q->rx_bufs == NULL || q->tx_bufs == NULL)) rc = -ENOMEM;
  if (rc != 0) {
    e1k_log(d, NPA_LOG_ERROR, "configure: queue %u ring memory for %u descriptors: %d", q->qid, n,
            rc);
    free_queue_rings(d, q);
    return rc;
  }
  q->rx_ring = (volatile e1k_rx_desc *)q->rx_mem.vaddr;
  q->tx_ring = (volatile e1k_tx_desc *)q->tx_mem.vaddr;
  q->nb_desc = n;
  q->mask = (uint16_t)(n - 1);
  return 0;
}

/* QEMU's e1000e (7.2) throttles every MSI-X vector, whatever EITR says: it
 * clamps the interval to at least 500 x 256 ns and, after each interrupt,
 * arms a 128 us timer whose handler asserts that MSI-X is still enabled. If
 * MSI-X is switched off (irq_setup(0): VFIO_DEVICE_SET_IRQS) inside that
 * window, QEMU aborts: "e1000e_intrmgr_on_msix_throttling_timer: Assertion
 * `msix_enabled(...)' failed" (seen in the VFIO lab under host load, which
 * delays QEMU's timer thread while the vCPU runs on). Fixed upstream in 8.0 by
 * dropping the assertion. So EITR is set to 0 (no throttling on hardware, the
 * 128 us minimum on QEMU), and teardown masks everything, then sleeps well past
 * that window before MSI-X goes: the sleep completes on a guest timer that
 * QEMU runs after the earlier-due throttling timer. */
#define E1K_IRQ_SETTLE_US 1000u

static void eitr_clear(e1k_dev *d) {
  for (uint32_t v = 0; v < E1K_NUM_EITR; v++) e1k_wr32(d->bar, E1K_EITR(v), 0);
}

static int irq_unwire(e1k_dev *d) {
  if (!d->irq_wired) return 0;
  e1k_wr32(d->bar, E1K_IMC, 0xffffffffu);
  e1k_flush(d->bar);
  d->svc->sleep_us(d->svc->ctx, E1K_IRQ_SETTLE_US);
  int rc = d->svc->irq_setup ? d->svc->irq_setup(d->svc->ctx, 0, NULL) : 0;
  d->irq_wired = 0;
  for (uint32_t v = 0; v < E1K_NUM_VECTORS; v++) d->efds[v] = -1;
  return rc;
}

static int e1k_stop(npa_plugin_dev *pd);

static void e1k_remove(npa_plugin_dev *pd) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL) return;
  if (d->started) e1k_stop(pd);
  irq_unwire(d);
  e1k_irq_disable_all(d);
  free_rings(d);
  free(d);
}

static int e1k_get_caps(npa_plugin_dev *pd, npa_dev_caps *caps) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || caps == NULL || caps->struct_size < sizeof(npa_dev_caps)) return -EINVAL;
  memset(caps, 0, sizeof(*caps));
  caps->struct_size = sizeof(*caps);
  /* The 82574's two queue pairs; RSS (rss_set, e1000e_hw.c) spreads RX
   * over them by the redirection table. */
  caps->max_queue_pairs = E1K_MAX_QP;
  /* 10.2.5.x RDLEN/TDLEN: a multiple of 128 bytes = 8 descriptors; powers of
   * two from 64 satisfy that. */
  caps->min_ring_size = E1K_MIN_RING;
  caps->max_ring_size = E1K_MAX_RING;
  caps->max_mtu = E1K_MAX_MTU;
  caps->offloads = E1K_OFFLOADS;
  if (d->msix_vectors == 0 || d->svc->irq_setup == NULL) caps->offloads &= ~NPA_CAP_RX_INTR;
  memcpy(caps->perm_mac, d->perm_mac, 6);
  return 0;
}

/* 7.4 + 10.2.4.9: MSI-X routing. RxQ0 -> vector 0, RxQ1 -> vector 1, Other
 * (link) -> vector 2; with fewer vectors the RX queues share vector 0 and
 * Other takes the last. TX is not routed: it is reaped by polling. EIAC
 * auto-clears the queue/other causes when their vector fires; with
 * CTRL_EXT.EIAME, IAM auto-masks the RX causes so each arm yields one
 * interrupt. */
static int irq_wire(e1k_dev *d) {
  if (d->irq_wired) return 0;
  if (d->svc->irq_setup == NULL || d->msix_vectors == 0) return -ENOTSUP;
  uint32_t nvec = d->msix_vectors >= E1K_NUM_VECTORS ? E1K_NUM_VECTORS : d->msix_vectors;
  int efds[E1K_NUM_VECTORS];
  for (uint32_t v = 0; v < E1K_NUM_VECTORS; v++) efds[v] = -1;
  eitr_clear(d); /* before MSI-X is on: see E1K_IRQ_SETTLE_US */
  int rc = d->svc->irq_setup(d->svc->ctx, nvec, efds);
  if (rc != 0) {
    e1k_log(d, NPA_LOG_ERROR, "irq_setup(%u) failed: %d", nvec, rc);
    return rc;
  }
  for (uint32_t v = 0; v < E1K_NUM_VECTORS; v++) d->efds[v] = efds[v < nvec ? v : nvec - 1];
  d->other_vec = nvec - 1;
  /* A vector of its own for each RX queue when there are enough. */
  for (uint32_t i = 0; i < E1K_MAX_QP; i++) d->q[i].vec = i < nvec - 1 ? i : 0;
  d->irq_wired = 1;
  return 0;
}

static void irq_program(e1k_dev *d) {
  if (!d->irq_wired) return;
  e1k_wr32(d->bar, E1K_IVAR,
           ((E1K_IVAR_VALID | d->q[0].vec) << E1K_IVAR_RXQ0_SHIFT) |
               ((E1K_IVAR_VALID | d->q[1].vec) << E1K_IVAR_RXQ1_SHIFT) |
               ((E1K_IVAR_VALID | d->other_vec) << E1K_IVAR_OTHER_SHIFT));
  uint32_t ext = e1k_rd32(d->bar, E1K_CTRL_EXT);
  ext &= ~E1K_CTRL_EXT_IAME;
  ext |= E1K_CTRL_EXT_EIAME | E1K_CTRL_EXT_PBA_CLR;
  e1k_wr32(d->bar, E1K_CTRL_EXT, ext);
  e1k_wr32(d->bar, E1K_EIAC, E1K_ICR_RXQ0 | E1K_ICR_RXQ1 | E1K_ICR_OTHER);
  e1k_wr32(d->bar, E1K_IAM, E1K_ICR_RXQ0 | E1K_ICR_RXQ1);
  e1k_wr32(d->bar, E1K_ITR, 0); /* no throttling: one frame, one interrupt */
  eitr_clear(d);
  /* Link changes arrive as the Other cause; RxQn is armed by rx_intr_enable. */
  e1k_wr32(d->bar, E1K_IMS, E1K_ICR_LSC | E1K_ICR_OTHER);
}

static int is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

static int e1k_configure(npa_plugin_dev *pd, const npa_dev_config *cfg) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || cfg == NULL || cfg->struct_size < offsetof(npa_dev_config, vlan_filter))
    return -EINVAL;
  if (d->started) return -EBUSY;
  if (cfg->nb_queue_pairs == 0 || cfg->nb_queue_pairs > E1K_MAX_QP) {
    e1k_log(d, NPA_LOG_ERROR, "configure: %u queue pairs asked, 1..%u supported",
            cfg->nb_queue_pairs, E1K_MAX_QP);
    return -EINVAL;
  }
  if (!is_pow2(cfg->ring_size) || cfg->ring_size < E1K_MIN_RING || cfg->ring_size > E1K_MAX_RING) {
    e1k_log(d, NPA_LOG_ERROR, "configure: ring size %u not a power of two in [%u, %u]",
            cfg->ring_size, E1K_MIN_RING, E1K_MAX_RING);
    return -EINVAL;
  }
  if (cfg->mtu < 68 || cfg->mtu > E1K_MAX_MTU) {
    e1k_log(d, NPA_LOG_ERROR, "configure: MTU %u outside [68, %u]", cfg->mtu, E1K_MAX_MTU);
    return -EINVAL;
  }
  if (cfg->offloads & ~E1K_OFFLOADS) {
    e1k_log(d, NPA_LOG_ERROR, "configure: offloads 0x%llx not supported",
            (unsigned long long)(cfg->offloads & ~E1K_OFFLOADS));
    return -ENOTSUP;
  }
  static const uint8_t zero[6] = {0};
  const uint8_t *mac = memcmp(cfg->mac, zero, 6) == 0 ? d->perm_mac : cfg->mac;
  if (!e1k_mac_valid(mac)) {
    e1k_log(d, NPA_LOG_ERROR, "configure: MAC is multicast");
    return -EINVAL;
  }
  uint32_t vfta[E1K_NUM_VFTA];
  memset(vfta, 0, sizeof(vfta));
  if (cfg->struct_size >= offsetof(npa_dev_config, rss_key_len) && cfg->vlan_filter_count) {
    if (cfg->vlan_filter == NULL || cfg->vlan_filter_count > 4096) return -EINVAL;
    for (uint32_t i = 0; i < cfg->vlan_filter_count; i++) {
      uint16_t vid = cfg->vlan_filter[i];
      if (vid >= 4096) return -EINVAL;
      vfta[vid >> 5] |= 1u << (vid & 31);
    }
  }
  if (cfg->rx_intr) {
    int rc = irq_wire(d);
    if (rc != 0) return rc;
  }

  for (uint16_t i = 0; i < E1K_MAX_QP; i++) {
    npa_plugin_queue *q = &d->q[i];
    q->dev = d;
    q->qid = i;
    q->rdt = E1K_Q(E1K_RDT, i);
    q->tdt = E1K_Q(E1K_TDT, i);
    if (i >= cfg->nb_queue_pairs) {
      free_queue_rings(d, q); /* a queue this configuration does not use */
      continue;
    }
    if (q->nb_desc == cfg->ring_size) continue;
    free_queue_rings(d, q);
    int rc = alloc_queue_rings(d, q, cfg->ring_size);
    if (rc != 0) {
      free_rings(d);
      return rc;
    }
  }
  d->nqp = cfg->nb_queue_pairs;
  /* RSS off until rss_set programs it for this queue count: a redirection
   * table left from a two-queue configuration must not send frames to a
   * queue that has no ring now. */
  e1k_wr32(d->bar, E1K_MRQC, 0);
  __atomic_store_n(&d->rss_on, 0, __ATOMIC_RELEASE);
  memcpy(d->mac, mac, 6);
  memcpy(d->vfta, vfta, sizeof(vfta));
  d->ring_size = cfg->ring_size;
  d->mtu = cfg->mtu;
  d->offloads = cfg->offloads;
  d->rx_intr = cfg->rx_intr != 0;

  /* Receive filtering (10.2.5): our MAC in RA[0], the rest of RA and the
   * multicast table empty, VLAN table as asked. */
  e1k_write_mac_filter(d, d->mac);
  for (uint32_t i = 1; i < E1K_NUM_RA; i++) {
    e1k_wr32(d->bar, E1K_RAH(i), 0);
    e1k_wr32(d->bar, E1K_RAL(i), 0);
  }
  for (uint32_t i = 0; i < E1K_NUM_MTA; i++) e1k_wr32(d->bar, E1K_MTA(i), 0);
  for (uint32_t i = 0; i < E1K_NUM_VFTA; i++) e1k_wr32(d->bar, E1K_VFTA(i), d->vfta[i]);
  d->configured = 1;
  return 0;
}

static npa_plugin_queue *e1k_queue(npa_plugin_dev *pd, uint16_t qid) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || qid >= d->nqp || !d->started) return NULL;
  return &d->q[qid];
}

static int e1k_start(npa_plugin_dev *pd) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL) return -EINVAL;
  if (!d->configured) return -EINVAL;
  if (d->started) return -EBUSY;
  for (uint16_t i = 0; i < d->nqp; i++) {
    npa_plugin_queue *q = &d->q[i];
    memset((void *)q->rx_ring, 0, (size_t)q->nb_desc * sizeof(e1k_rx_desc));
    memset((void *)q->tx_ring, 0, (size_t)q->nb_desc * sizeof(e1k_tx_desc));
    int rc = e1k_rx_fill(q);
    if (rc != 0) {
      for (uint16_t k = 0; k <= i; k++) e1k_release_all(&d->q[k]);
      return rc;
    }
    q->tx_tail = q->tx_clean = 0;
    q->ctx_valid = 0;
    q->tx_stopped = 0;
  }

  uint32_t ctrl = e1k_rd32(d->bar, E1K_CTRL) & ~E1K_CTRL_GIO_MASTER_DISABLE;
  e1k_wr32(d->bar, E1K_CTRL, ctrl | E1K_CTRL_SLU);
  /* 4.6.6 transmit initialisation, each queue's ring; TARC1's enable for
   * the second (TARC0's is set at reset). */
  for (uint16_t i = 0; i < d->nqp; i++) {
    const npa_plugin_queue *q = &d->q[i];
    e1k_wr32(d->bar, E1K_Q(E1K_TDBAL, i), (uint32_t)q->tx_mem.iova);
    e1k_wr32(d->bar, E1K_Q(E1K_TDBAH, i), (uint32_t)(q->tx_mem.iova >> 32));
    e1k_wr32(d->bar, E1K_Q(E1K_TDLEN, i), (uint32_t)q->nb_desc * 16u);
    e1k_wr32(d->bar, E1K_Q(E1K_TDH, i), 0);
    e1k_wr32(d->bar, E1K_Q(E1K_TDT, i), 0);
    e1k_wr32(d->bar, E1K_Q(E1K_TXDCTL, i), E1K_TXDCTL_VALUE);
    e1k_wr32(d->bar, E1K_Q(E1K_TARC, i), e1k_rd32(d->bar, E1K_Q(E1K_TARC, i)) | E1K_TARC_ENABLE);
  }
  e1k_wr32(d->bar, E1K_TIDV, 0);
  e1k_wr32(d->bar, E1K_TADV, 0);
  e1k_wr32(d->bar, E1K_TIPG, E1K_TIPG_DEFAULT);
  e1k_wr32(d->bar, E1K_TCTL,
           E1K_TCTL_EN | E1K_TCTL_PSP | E1K_TCTL_CT(0x0f) | E1K_TCTL_COLD(0x3f) | E1K_TCTL_RTLC);
  /* 4.6.5 receive initialisation: extended descriptors (RFCTL.EXSTEN) with
   * PCSD, so the write-back carries the RSS hash when rss_set enabled RSS
   * (the packet checksum it replaces is not used here; the L4 checksum
   * status bits stay). */
  e1k_wr32(d->bar, E1K_RFCTL, e1k_rd32(d->bar, E1K_RFCTL) | E1K_RFCTL_EXSTEN);
  e1k_wr32(d->bar, E1K_RXCSUM,
           E1K_RXCSUM_PCSD |
               ((d->offloads & NPA_CAP_RX_CSUM) ? (E1K_RXCSUM_IPOFLD | E1K_RXCSUM_TUOFLD) : 0));
  for (uint16_t i = 0; i < d->nqp; i++) {
    const npa_plugin_queue *q = &d->q[i];
    e1k_wr32(d->bar, E1K_Q(E1K_RDBAL, i), (uint32_t)q->rx_mem.iova);
    e1k_wr32(d->bar, E1K_Q(E1K_RDBAH, i), (uint32_t)(q->rx_mem.iova >> 32));
    e1k_wr32(d->bar, E1K_Q(E1K_RDLEN, i), (uint32_t)q->nb_desc * 16u);
    e1k_wr32(d->bar, E1K_Q(E1K_RDH, i), 0);
    e1k_wr32(d->bar, E1K_Q(E1K_RDT, i), 0);
  }
  e1k_wr32(d->bar, E1K_RDTR, 0); /* no receive delay: write back at once */
  e1k_wr32(d->bar, E1K_RADV, 0);
  uint32_t rctl = E1K_RCTL_EN | E1K_RCTL_BAM | E1K_RCTL_BSIZE_2048 | E1K_RCTL_SECRC |
                  E1K_RCTL_DTYP_LEGACY;
  if (d->offloads & NPA_CAP_VLAN_FILTER) rctl |= E1K_RCTL_VFE;
  e1k_wr32(d->bar, E1K_RCTL, rctl);
  irq_program(d);
  for (uint16_t i = 0; i < d->nqp; i++) d->q[i].running = 1;
  d->started = 1;
  /* Descriptors (written by e1k_rx_fill) before the tails that expose them;
   * the last slot stays with software (7.1.3: RDT == RDH means empty). */
  e1k_wmb();
  for (uint16_t i = 0; i < d->nqp; i++) e1k_wr32(d->bar, d->q[i].rdt, (uint32_t)d->q[i].nb_desc - 1);
  return 0;
}

static int e1k_quiesce(npa_plugin_dev *pd, uint32_t timeout_us) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || !d->started) return -EINVAL;
  for (uint16_t i = 0; i < d->nqp; i++) d->q[i].tx_stopped = 1;
  if (timeout_us > 10000000u) timeout_us = 10000000u;
  uint64_t deadline = d->svc->now_ns(d->svc->ctx) + (uint64_t)timeout_us * 1000u;
  for (uint32_t n = 0; n <= timeout_us / 100u + 1; n++) {
    int busy = 0;
    for (uint16_t i = 0; i < d->nqp; i++) {
      e1k_tx_reap(&d->q[i]);
      busy |= d->q[i].tx_clean != d->q[i].tx_tail;
    }
    if (!busy) return 0;
    if (d->svc->now_ns(d->svc->ctx) >= deadline) break;
    d->svc->sleep_us(d->svc->ctx, 100);
  }
  return -EAGAIN;
}

static int e1k_stop(npa_plugin_dev *pd) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL) return -EINVAL;
  if (!d->started) return 0;
  /* Give queued frames a short, bounded chance to leave (TDH reaches TDT). */
  for (uint16_t i = 0; i < d->nqp; i++) {
    d->q[i].tx_stopped = 1;
    e1k_wait_reg(d, E1K_Q(E1K_TDH, i), 0xffffu, d->q[i].tx_tail, 20000, 100);
  }
  e1k_wr32(d->bar, E1K_IMC, 0xffffffffu);
  e1k_wr32(d->bar, E1K_RCTL, 0);
  e1k_wr32(d->bar, E1K_TCTL, E1K_TCTL_PSP);
  e1k_flush(d->bar);
  /* GIO Master Disable, then wait for STATUS.GIO_MASTER_ENABLE to clear:
   * the device's own statement that no DMA is pending (10.2.2.1/10.2.2.2). */
  e1k_wr32(d->bar, E1K_CTRL, e1k_rd32(d->bar, E1K_CTRL) | E1K_CTRL_GIO_MASTER_DISABLE);
  int rc = e1k_wait_reg(d, E1K_STATUS, E1K_STATUS_GIO_MASTER_ENABLE, 0, 80000, 100);
  if (rc != 0) {
    e1k_log(d, NPA_LOG_WARN, "stop: bus master still busy (%d); resetting the device", rc);
    if (e1k_global_reset(d) == 0) {
      e1k_write_mac_filter(d, d->mac);
      e1k_link_setup(d, 0);
    }
  }
  /* Rings are no longer read by the device: point them nowhere. */
  for (uint16_t i = 0; i < E1K_MAX_QP; i++) {
    e1k_wr32(d->bar, E1K_Q(E1K_RDLEN, i), 0);
    e1k_wr32(d->bar, E1K_Q(E1K_TDLEN, i), 0);
  }
  for (uint16_t i = 0; i < d->nqp; i++) {
    e1k_tx_reap(&d->q[i]); /* completed frames first, so the counts stay exact */
    e1k_release_all(&d->q[i]);
    d->q[i].running = 0;
  }
  d->started = 0;
  return 0;
}

static int e1k_reset(npa_plugin_dev *pd) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL) return -EINVAL;
  if (d->started) return -EBUSY;
  int rc = e1k_global_reset(d);
  if (rc != 0) return rc;
  e1k_write_mac_filter(d, d->mac);
  e1k_link_setup(d, 2000000);
  /* Rings, filters and MSI-X routing are gone with the reset: configure
   * must run again before start; RSS too (rss_set). */
  d->configured = 0;
  __atomic_store_n(&d->rss_on, 0, __ATOMIC_RELEASE);
  return 0;
}

static int e1k_link_status(npa_plugin_dev *pd, npa_link_status *out) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || out == NULL || out->struct_size < sizeof(npa_link_status)) return -EINVAL;
  uint32_t st = e1k_rd32(d->bar, E1K_STATUS);
  if (st == 0xffffffffu) return -ENODEV;
  static const uint32_t speeds[4] = {10, 100, 1000, 1000};
  out->up = (st & E1K_STATUS_LU) != 0;
  out->speed_mbps = out->up ? speeds[(st & E1K_STATUS_SPEED_MASK) >> E1K_STATUS_SPEED_SHIFT] : 0;
  out->full_duplex = out->up && (st & E1K_STATUS_FD);
  return 0;
}

static int e1k_queue_stats(npa_plugin_dev *pd, uint16_t qid, npa_plugin_qstats *out) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || out == NULL || qid >= d->nqp || out->struct_size < sizeof(npa_plugin_qstats))
    return -EINVAL;
  e1k_stats_fold(d);
  const npa_plugin_queue *q = &d->q[qid];
  out->rx_packets = q->rx_packets;
  out->rx_bytes = q->rx_bytes;
  /* MPC counts the port's misses, not a queue's: queue 0 reports them. */
  out->rx_dropped = (qid == 0 ? d->mpc_total : 0) + q->rx_errors;
  out->tx_packets = q->tx_packets;
  out->tx_bytes = q->tx_bytes;
  return 0;
}

static int e1k_set_mac(npa_plugin_dev *pd, const uint8_t mac[6]) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || mac == NULL || !e1k_mac_valid(mac)) return -EINVAL;
  memcpy(d->mac, mac, 6);
  e1k_write_mac_filter(d, d->mac);
  return 0;
}

static int e1k_set_mtu(npa_plugin_dev *pd, uint32_t mtu) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || mtu < 68 || mtu > E1K_MAX_MTU) return -EINVAL;
  d->mtu = mtu;
  return 0;
}

static int e1k_vlan_filter(npa_plugin_dev *pd, uint16_t vid, int on) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || vid >= 4096) return -EINVAL;
  if (on)
    d->vfta[vid >> 5] |= 1u << (vid & 31);
  else
    d->vfta[vid >> 5] &= ~(1u << (vid & 31));
  e1k_wr32(d->bar, E1K_VFTA(vid >> 5), d->vfta[vid >> 5]);
  return 0;
}

static int e1k_irq_handler(npa_plugin_dev *pd, uint32_t vec) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || !d->irq_wired || vec >= E1K_NUM_VECTORS) return -EINVAL;
  if (vec != d->other_vec) return 0; /* queue vector: nothing to do here */
  /* Other cause (7.4.x): read the causes, clear the non-queue ones (write 1
   * to clear) and note link changes. */
  uint32_t icr = e1k_rd32(d->bar, E1K_ICR);
  if (icr == 0xffffffffu) return -ENODEV;
  e1k_wr32(d->bar, E1K_ICR, icr & ~(E1K_ICR_RXQ0 | E1K_ICR_RXQ1 | E1K_ICR_TXQ0 | E1K_ICR_TXQ1));
  if (icr & E1K_ICR_LSC) {
    uint32_t up = (e1k_rd32(d->bar, E1K_STATUS) & E1K_STATUS_LU) != 0;
    if (up != d->link_up_last) e1k_log(d, NPA_LOG_INFO, "link %s", up ? "up" : "down");
    d->link_up_last = up;
  }
  /* Re-enable the Other cause, which EIAC cleared when the vector fired. */
  e1k_wr32(d->bar, E1K_IMS, E1K_ICR_LSC | E1K_ICR_OTHER);
  return 0;
}

static const npa_plugin_ctrl_ops e1k_ctrl = {
    .struct_size = sizeof(npa_plugin_ctrl_ops),
    .probe = e1k_probe,
    .remove = e1k_remove,
    .get_caps = e1k_get_caps,
    .configure = e1k_configure,
    .start = e1k_start,
    .stop = e1k_stop,
    .queue = e1k_queue,
    .link_status = e1k_link_status,
    .queue_stats = e1k_queue_stats,
    .quiesce = e1k_quiesce,
    .reset = e1k_reset,
    .set_mac = e1k_set_mac,
    .set_mtu = e1k_set_mtu,
    .vlan_filter = e1k_vlan_filter,
    .irq_handler = e1k_irq_handler,
    .rss_set = e1k_rss_set,
};

static const npa_plugin_fast_ops e1k_fast = {
    .struct_size = sizeof(npa_plugin_fast_ops),
    .rx_burst = e1k_rx_burst,
    .tx_burst = e1k_tx_burst,
    .tx_reap = e1k_tx_reap,
    .rx_intr_enable = e1k_rx_intr_enable,
    .get_irq_vector = e1k_get_irq_vector,
};

static const npa_plugin_info e1k_info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = "e1000e",
    .vendor = "npa",
    .version = "1.0",
    .id_table = e1k_ids,
    .id_count = sizeof(e1k_ids) / sizeof(e1k_ids[0]),
    .id_entry_size = sizeof(npa_pci_id),
    .capabilities = E1K_OFFLOADS,
    .ctrl = &e1k_ctrl,
    .fast = &e1k_fast,
    /* Every TX frame goes back through d->free_tx, RX buffers through
     * buf_free (e1000e_rxtx.c: reap and release_all). TX_BYTES: q->tx_bytes
     * is a software count, since probe, of pkt_len for each frame
     * e1k_tx_burst took (not the device's GOTC, which counts the wire).
     * RX_BYTES: q->rx_bytes likewise, for each frame e1k_rx_burst hands
     * up (single-segment frames: len is pkt_len). */
    .flags = NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES | NPA_PLUGIN_F_RX_BYTES,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q) {
  if (q == NULL || q->struct_size < sizeof(npa_plugin_query) || q->abi_major != NPA_PLUGIN_ABI_MAJOR)
    return NULL;
  return &e1k_info;
}
