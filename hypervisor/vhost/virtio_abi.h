// hypervisor/vhost/virtio_abi.h — the Linux virtio UAPI headers, made usable
// from C++.
//
// <linux/virtio_net.h> names a struct member `class` (virtio_net_ctrl_hdr)
// and <linux/virtio_ring.h>'s legacy vring_init() converts void* implicitly;
// both are fine C and invalid C++. We need neither the control-queue header
// nor the legacy helpers, so the keyword is renamed for the duration of the
// include and the legacy block is compiled out. Include this instead of the
// UAPI headers.
#ifndef NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_
#define NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY 1
#endif
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#define class class_
#include <linux/virtio_net.h>
#undef class

#endif  // NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_
