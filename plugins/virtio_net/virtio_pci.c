/* virtio_pci.c — VIRTIO 1.x modern PCI transport (see virtio_pci.h). */
#include "virtio_pci.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "virtio 1.x registers and rings are little-endian; add byte swaps for this host");

#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAPABILITY_LIST 0x34
/* 48 capabilities fit in the 192 bytes after the header; more means a loop. */
#define PCI_CAP_WALK_MAX 48

void vp_log(const npa_services *svc, int level, const char *fmt, ...) {
  if (svc == NULL || svc->log == NULL) return;
  va_list ap;
  va_start(ap, fmt);
  svc->log(svc->ctx, level, fmt, ap);
  va_end(ap);
}

static int cfg8(const npa_services *svc, uint32_t off, uint8_t *v) {
  uint32_t x = 0;
  int rc = svc->cfg_read(svc->ctx, off, 1, &x);
  *v = (uint8_t)x;
  return rc;
}

static int cfg32(const npa_services *svc, uint32_t off, uint32_t *v) {
  return svc->cfg_read(svc->ctx, off, 4, v);
}

/* Map bar (once) and point r at [off, off+len) inside it, bounds-checked. */
static int vp_region_map(vp_dev *vp, vp_region *r, const char *what, uint8_t bar, uint32_t off,
                         uint32_t len, uint32_t min_len) {
  if (bar > 5) {
    vp_log(vp->svc, NPA_LOG_ERROR, "virtio %s capability names BAR %u (> 5)", what, bar);
    return -EIO;
  }
  if (len < min_len) {
    vp_log(vp->svc, NPA_LOG_ERROR, "virtio %s capability length %u < %u", what, len, min_len);
    return -EIO;
  }
  if (vp->bar[bar] == NULL) {
    volatile void *addr = NULL;
    uint64_t blen = 0;
    int rc = vp->svc->bar_map(vp->svc->ctx, bar, &addr, &blen);
    if (rc < 0 || addr == NULL) {
      vp_log(vp->svc, NPA_LOG_ERROR, "virtio %s: cannot map BAR %u (%d)", what, bar, rc);
      return rc < 0 ? rc : -EIO;
    }
    vp->bar[bar] = addr;
    vp->bar_len[bar] = blen;
  }
  if ((uint64_t)off + len > vp->bar_len[bar]) {
    vp_log(vp->svc, NPA_LOG_ERROR,
           "virtio %s capability [0x%x, +0x%x) lies outside BAR %u (0x%llx bytes)", what, off,
           len, bar, (unsigned long long)vp->bar_len[bar]);
    return -EIO;
  }
  r->base = (volatile uint8_t *)vp->bar[bar] + off;
  r->len = len;
  r->bar = bar;
  return 0;
}

int vp_map(vp_dev *vp, const npa_services *svc) {
  memset(vp, 0, sizeof(*vp));
  vp->svc = svc;
  uint32_t st = 0;
  int rc = svc->cfg_read(svc->ctx, PCI_STATUS, 2, &st);
  if (rc < 0) return rc;
  if (!(st & PCI_STATUS_CAP_LIST)) {
    vp_log(svc, NPA_LOG_ERROR, "no PCI capability list: not a modern virtio device");
    return -EIO;
  }
  uint8_t pos = 0;
  if ((rc = cfg8(svc, PCI_CAPABILITY_LIST, &pos)) < 0) return rc;
  /* 4.1.4: the driver uses the first capability of each type it understands. */
  for (int n = 0; pos != 0 && n < PCI_CAP_WALK_MAX; n++) {
    pos &= 0xfc;
    if (pos < 0x40) {
      vp_log(svc, NPA_LOG_ERROR, "PCI capability pointer 0x%x inside the header", pos);
      return -EIO;
    }
    uint8_t id = 0, next = 0;
    if ((rc = cfg8(svc, pos + VP_CAP_VNDR, &id)) < 0) return rc;
    if ((rc = cfg8(svc, pos + VP_CAP_NEXT, &next)) < 0) return rc;
    if (id == PCI_CAP_ID_VNDR) {
      uint8_t cap_len = 0, type = 0, bar = 0;
      uint32_t off = 0, len = 0;
      if ((rc = cfg8(svc, pos + VP_CAP_LEN, &cap_len)) < 0 ||
          (rc = cfg8(svc, pos + VP_CAP_CFG_TYPE, &type)) < 0 ||
          (rc = cfg8(svc, pos + VP_CAP_BAR, &bar)) < 0 ||
          (rc = cfg32(svc, pos + VP_CAP_OFFSET, &off)) < 0 ||
          (rc = cfg32(svc, pos + VP_CAP_LENGTH, &len)) < 0)
        return rc;
      if (cap_len < VP_CAP_MIN_LEN || pos + cap_len > 256) {
        vp_log(svc, NPA_LOG_ERROR, "virtio capability at 0x%x has bad cap_len %u", pos, cap_len);
        return -EIO;
      }
      if (type == VIRTIO_PCI_CAP_COMMON_CFG && vp->common.base == NULL) {
        rc = vp_region_map(vp, &vp->common, "common-cfg", bar, off, len, VP_COMMON_MIN_LEN);
      } else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && vp->notify.base == NULL) {
        if (cap_len < VP_NOTIFY_CAP_MIN_LEN) {
          vp_log(svc, NPA_LOG_ERROR, "virtio notify capability too short (%u)", cap_len);
          return -EIO;
        }
        if ((rc = cfg32(svc, pos + VP_CAP_NOTIFY_MULT, &vp->notify_mult)) < 0) return rc;
        rc = vp_region_map(vp, &vp->notify, "notify", bar, off, len, 2);
      } else if (type == VIRTIO_PCI_CAP_ISR_CFG && vp->isr.base == NULL) {
        rc = vp_region_map(vp, &vp->isr, "isr", bar, off, len, 1);
      } else if (type == VIRTIO_PCI_CAP_DEVICE_CFG && vp->device.base == NULL) {
        rc = vp_region_map(vp, &vp->device, "device-cfg", bar, off, len, 1);
      }
      if (rc < 0) return rc;
    }
    pos = next;
  }
  if (pos != 0) {
    vp_log(svc, NPA_LOG_ERROR, "PCI capability list does not end (loop?)");
    return -EIO;
  }
  if (vp->common.base == NULL || vp->notify.base == NULL || vp->device.base == NULL) {
    vp_log(svc, NPA_LOG_ERROR, "virtio capabilities missing:%s%s%s",
           vp->common.base ? "" : " common-cfg", vp->notify.base ? "" : " notify",
           vp->device.base ? "" : " device-cfg");
    return -EIO;
  }
  return 0;
}

int vp_reset(const vp_dev *vp) {
  vp_write8(&vp->common, VP_COMMON_STATUS, 0);
  /* 4.1.4.3.2: reset is complete when device_status reads back 0. */
  uint64_t t0 = vp->svc->now_ns(vp->svc->ctx);
  while (vp_status(vp) != 0) {
    if (vp->svc->now_ns(vp->svc->ctx) - t0 > 1000000000ull) {
      vp_log(vp->svc, NPA_LOG_ERROR, "device reset did not complete in 1 s (status 0x%x)",
             vp_status(vp));
      return -ETIMEDOUT;
    }
    vp->svc->sleep_us(vp->svc->ctx, 100);
  }
  return 0;
}

uint64_t vp_device_features(const vp_dev *vp) {
  vp_write32(&vp->common, VP_COMMON_DFSELECT, 0);
  uint64_t lo = vp_read32(&vp->common, VP_COMMON_DF);
  vp_write32(&vp->common, VP_COMMON_DFSELECT, 1);
  uint64_t hi = vp_read32(&vp->common, VP_COMMON_DF);
  return lo | (hi << 32);
}

void vp_set_driver_features(const vp_dev *vp, uint64_t f) {
  vp_write32(&vp->common, VP_COMMON_GFSELECT, 0);
  vp_write32(&vp->common, VP_COMMON_GF, (uint32_t)f);
  vp_write32(&vp->common, VP_COMMON_GFSELECT, 1);
  vp_write32(&vp->common, VP_COMMON_GF, (uint32_t)(f >> 32));
}

int vp_read_device_cfg(const vp_dev *vp, uint32_t off, void *out, uint32_t len) {
  if ((uint64_t)off + len > vp->device.len) {
    vp_log(vp->svc, NPA_LOG_ERROR, "device config [%u, +%u) beyond its %u bytes", off, len,
           vp->device.len);
    return -EIO;
  }
  uint8_t *o = out;
  /* 2.5.1 / 4.1.4.3.1: re-read until config_generation is stable around the
   * whole read, so a multi-byte field is never torn by a device update. */
  for (int tries = 0; tries < 100; tries++) {
    uint8_t g0 = vp_read8(&vp->common, VP_COMMON_CFGGENERATION);
    for (uint32_t i = 0; i < len; i++) o[i] = vp_read8(&vp->device, off + i);
    if (vp_read8(&vp->common, VP_COMMON_CFGGENERATION) == g0) return 0;
  }
  vp_log(vp->svc, NPA_LOG_ERROR, "device config generation never settled");
  return -EIO;
}

uint16_t vp_queue_size(const vp_dev *vp, uint16_t idx) {
  vp_write16(&vp->common, VP_COMMON_Q_SELECT, idx);
  return vp_read16(&vp->common, VP_COMMON_Q_SIZE);
}

int vp_queue_setup(const vp_dev *vp, uint16_t idx, uint16_t size, uint64_t desc, uint64_t avail,
                   uint64_t used, uint16_t msix_vec, volatile uint16_t **notify) {
  const vp_region *c = &vp->common;
  vp_write16(c, VP_COMMON_Q_SELECT, idx);
  vp_write16(c, VP_COMMON_Q_SIZE, size);
  vp_write64(c, VP_COMMON_Q_DESCLO, desc);
  vp_write64(c, VP_COMMON_Q_AVAILLO, avail);
  vp_write64(c, VP_COMMON_Q_USEDLO, used);
  vp_write16(c, VP_COMMON_Q_MSIX, msix_vec);
  /* 4.1.5.1.3.1: the device answers NO_VECTOR when it could not take the
   * vector; reading it back is the only way to know. */
  if (msix_vec != VIRTIO_MSI_NO_VECTOR && vp_read16(c, VP_COMMON_Q_MSIX) != msix_vec) {
    vp_log(vp->svc, NPA_LOG_ERROR, "queue %u: device refused MSI-X vector %u", idx, msix_vec);
    return -EIO;
  }
  /* 4.1.4.4: the queue's doorbell is at cap.offset + queue_notify_off *
   * notify_off_multiplier; the 16-bit write must fit in the region. */
  uint64_t noff = (uint64_t)vp_read16(c, VP_COMMON_Q_NOFF) * vp->notify_mult;
  if (noff + 2 > vp->notify.len || (noff & 1)) {
    vp_log(vp->svc, NPA_LOG_ERROR, "queue %u: notify offset 0x%llx outside the %u-byte region",
           idx, (unsigned long long)noff, vp->notify.len);
    return -EIO;
  }
  *notify = (volatile uint16_t *)(vp->notify.base + noff);
  return 0;
}
