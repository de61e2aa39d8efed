/*
 * virtio_pci.h — VIRTIO 1.x modern PCI transport for the virtio_net plug-in.
 *
 *   vp_dev vp;
 *   int rc = vp_map(&vp, svc);                 // 4.1.4 capability walk + bar_map
 *   vp_reset(&vp);                             // 4.1.4.3.2: status 0, wait for 0
 *   vp_status_or(&vp, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
 *   uint64_t offered = vp_device_features(&vp);
 *
 * Everything the device reports (capability offsets and lengths, queue sizes,
 * notify offsets) is checked before use: a bad value makes the call return
 * -EIO after a log line naming it, never an out-of-bounds access.
 *
 * Register layout: VIRTIO 1.x section 4.1.4.3 (common configuration) and
 * 4.1.4.4 (notifications); device configuration 5.1.4. All fields are
 * little-endian; the plug-in targets little-endian hosts (x86-64) and says so
 * with a static assertion in virtio_pci.c.
 */
#ifndef NPA_PLUGINS_VIRTIO_NET_VIRTIO_PCI_H_
#define NPA_PLUGINS_VIRTIO_NET_VIRTIO_PCI_H_

#include <stdint.h>

#include "npa/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 4.1.2: modern devices use 0x1040 + device type; virtio-net is type 1. */
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_NET_MODERN 0x1041

/* 4.1.4: vendor-specific capability (PCI cap id 0x09) and its cfg_type. */
#define PCI_CAP_ID_VNDR 0x09
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* struct virtio_pci_cap field offsets (4.1.4). */
#define VP_CAP_VNDR 0
#define VP_CAP_NEXT 1
#define VP_CAP_LEN 2
#define VP_CAP_CFG_TYPE 3
#define VP_CAP_BAR 4
#define VP_CAP_OFFSET 8
#define VP_CAP_LENGTH 12
#define VP_CAP_NOTIFY_MULT 16 /* struct virtio_pci_notify_cap (4.1.4.4) */
#define VP_CAP_MIN_LEN 16
#define VP_NOTIFY_CAP_MIN_LEN 20

/* struct virtio_pci_common_cfg field offsets (4.1.4.3). */
#define VP_COMMON_DFSELECT 0
#define VP_COMMON_DF 4
#define VP_COMMON_GFSELECT 8
#define VP_COMMON_GF 12
#define VP_COMMON_MSIX 16
#define VP_COMMON_NUMQ 18
#define VP_COMMON_STATUS 20
#define VP_COMMON_CFGGENERATION 21
#define VP_COMMON_Q_SELECT 22
#define VP_COMMON_Q_SIZE 24
#define VP_COMMON_Q_MSIX 26
#define VP_COMMON_Q_ENABLE 28
#define VP_COMMON_Q_NOFF 30
#define VP_COMMON_Q_DESCLO 32
#define VP_COMMON_Q_DESCHI 36
#define VP_COMMON_Q_AVAILLO 40
#define VP_COMMON_Q_AVAILHI 44
#define VP_COMMON_Q_USEDLO 48
#define VP_COMMON_Q_USEDHI 52
#define VP_COMMON_MIN_LEN 56

/* 2.1 device status field. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED 128u

/* 4.1.5.1.2: "no vector" in msix_config / queue_msix_vector. */
#define VIRTIO_MSI_NO_VECTOR 0xffffu

/* 6: reserved (device-independent) feature bits. */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* What the capability walk found, each region inside a mapped BAR. */
typedef struct vp_region {
  volatile uint8_t *base; /* NULL: capability absent */
  uint32_t len;
  uint8_t bar;
} vp_region;

typedef struct vp_dev {
  const npa_services *svc;
  vp_region common, notify, isr, device;
  uint32_t notify_mult;
  volatile void *bar[6];
  uint64_t bar_len[6];
} vp_dev;

/* Log through the shell (printf-style). */
void vp_log(const npa_services *svc, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Walk the capability list, map the BARs the capabilities name and bounds-
 * check every region against its BAR. 0, -EIO (bad or missing capability,
 * logged), or the error bar_map/cfg_read returned. */
int vp_map(vp_dev *vp, const npa_services *svc);

/* 4.1.4.3 accessors. Each is one MMIO access of the field's width. */
static inline uint8_t vp_read8(const vp_region *r, uint32_t off) {
  return *(volatile uint8_t *)(r->base + off);
}
static inline uint16_t vp_read16(const vp_region *r, uint32_t off) {
  return *(volatile uint16_t *)(r->base + off);
}
static inline uint32_t vp_read32(const vp_region *r, uint32_t off) {
  return *(volatile uint32_t *)(r->base + off);
}
static inline void vp_write8(const vp_region *r, uint32_t off, uint8_t v) {
  *(volatile uint8_t *)(r->base + off) = v;
}
static inline void vp_write16(const vp_region *r, uint32_t off, uint16_t v) {
  *(volatile uint16_t *)(r->base + off) = v;
}
static inline void vp_write32(const vp_region *r, uint32_t off, uint32_t v) {
  *(volatile uint32_t *)(r->base + off) = v;
}
/* 4.1.3.1: 64-bit fields are written as two 32-bit accesses, low first. */
static inline void vp_write64(const vp_region *r, uint32_t lo_off, uint64_t v) {
  vp_write32(r, lo_off, (uint32_t)v);
  vp_write32(r, lo_off + 4, (uint32_t)(v >> 32));
}

static inline uint8_t vp_status(const vp_dev *vp) {
  return vp_read8(&vp->common, VP_COMMON_STATUS);
}
/* 3.1.1: status bits are only ever added during initialisation. */
static inline void vp_status_or(const vp_dev *vp, uint8_t bits) {
  vp_write8(&vp->common, VP_COMMON_STATUS, (uint8_t)(vp_status(vp) | bits));
}

/* 4.1.4.3.2: write 0, then wait until the device reads back 0 (bounded, 1 s).
 * 0 or -ETIMEDOUT. */
int vp_reset(const vp_dev *vp);

uint64_t vp_device_features(const vp_dev *vp);
void vp_set_driver_features(const vp_dev *vp, uint64_t f);

/* Device configuration read under the config_generation protocol (2.5.1):
 * copies len bytes at off into out. 0, -EIO if off+len is outside the
 * device-config region or the generation never settles. */
int vp_read_device_cfg(const vp_dev *vp, uint32_t off, void *out, uint32_t len);

/* Select queue idx and read its size; 0 means "not available" (4.1.4.3). */
uint16_t vp_queue_size(const vp_dev *vp, uint16_t idx);

/* Program queue idx (4.1.5.1.3): size, ring IOVAs, MSI-X vector (read back;
 * -EIO if the device refused it), and return its notify address in *notify
 * after bounds-checking queue_notify_off * notify_off_multiplier. Does not
 * enable the queue. */
int vp_queue_setup(const vp_dev *vp, uint16_t idx, uint16_t size, uint64_t desc, uint64_t avail,
                   uint64_t used, uint16_t msix_vec, volatile uint16_t **notify);
static inline void vp_queue_enable(const vp_dev *vp, uint16_t idx) {
  vp_write16(&vp->common, VP_COMMON_Q_SELECT, idx);
  vp_write16(&vp->common, VP_COMMON_Q_ENABLE, 1);
}

#ifdef __cplusplus
}
#endif
#endif /* NPA_PLUGINS_VIRTIO_NET_VIRTIO_PCI_H_ */
