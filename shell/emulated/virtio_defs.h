// shell/emulated/virtio_defs.h — VIRTIO 1.x split-ring and virtio-net definitions for
// C++ code.
//
// <linux/virtio_ring.h> cannot be compiled as C++ (its inline vring_init()
// converts void* implicitly) and <linux/virtio_net.h> uses `class` as a field
// name. So: the net header comes from the kernel UAPI header with `class`
// renamed for the duration of the include, and the ring layout (VIRTIO 1.x
// 2.7.5-2.7.8) is spelled out here; virtio_layout_check.c, a C file, pins
// these definitions to <linux/virtio_ring.h> at build time.
#ifndef NPA_SHELL_EMULATED_VIRTIO_DEFS_H_
#define NPA_SHELL_EMULATED_VIRTIO_DEFS_H_

#include <linux/virtio_config.h>

#include <cstddef>
#include <cstdint>

#define class npa_virtio_class_
#include <linux/virtio_net.h>
#undef class

#ifndef VRING_DESC_F_NEXT
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_USED_F_NO_NOTIFY 1
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#endif

namespace npa::shell {

struct vring_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct vring_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[];  // then uint16_t used_event (EVENT_IDX)
};
struct vring_used_elem {
  uint32_t id;
  uint32_t len;
};
struct vring_used {
  uint16_t flags;
  uint16_t idx;
  vring_used_elem ring[];  // then uint16_t avail_event (EVENT_IDX)
};
static_assert(sizeof(vring_desc) == 16 && offsetof(vring_desc, next) == 14, "VIRTIO 1.x 2.7.5");
static_assert(offsetof(vring_avail, ring) == 4, "VIRTIO 1.x 2.7.6");
static_assert(sizeof(vring_used_elem) == 8 && offsetof(vring_used, ring) == 4, "VIRTIO 1.x 2.7.8");
static_assert(sizeof(virtio_net_hdr_mrg_rxbuf) == 12, "VIRTIO 1.x 5.1.6");

}  // namespace npa::shell

#endif  // NPA_SHELL_EMULATED_VIRTIO_DEFS_H_
