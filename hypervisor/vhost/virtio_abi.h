// hypervisor/vhost/virtio_abi.h — TRANSITIONAL (issue 7): the old, kernel-UAPI
// spellings of the ring structures, flags, feature bits and net header, for
// the agent files that have not moved to include/npa/virtio_ring.h yet:
// hypervisor/vhost/vhost_session.{cc,_test.cc}, hypervisor/daemon/tap_uplink.h
// and tap_uplink_test.cc, tests/hostile/evil_frontend.cc. vhost_device.h
// includes it on their behalf.
//
// Nothing is defined here (the kernel headers are no longer included): every
// name is an alias of the one definition in npa/virtio_ring.h, so the bytes
// cannot drift. Types are aliased inside npa::agent (all those files live
// there or below); constants are macros, defined only if nobody defined them
// first. Do not include this in new code, and delete it once those files say
// npa_vring_* / npa_virtio_net_hdr_v1 / NPA_VRING_* / NPA_VIRTIO_*.
#ifndef NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_
#define NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_

#include "npa/virtio_ring.h"

namespace npa::agent {
using vring_desc = ::npa_vring_desc;
using vring_avail = ::npa_vring_avail;
using vring_used = ::npa_vring_used;
using vring_used_elem = ::npa_vring_used_elem;
using virtio_net_hdr_v1 = ::npa_virtio_net_hdr_v1;
}  // namespace npa::agent

#ifndef VRING_DESC_F_NEXT
#define VRING_DESC_F_NEXT NPA_VRING_DESC_F_NEXT
#define VRING_DESC_F_WRITE NPA_VRING_DESC_F_WRITE
#define VRING_DESC_F_INDIRECT NPA_VRING_DESC_F_INDIRECT
#define VIRTIO_RING_F_INDIRECT_DESC NPA_VIRTIO_F_RING_INDIRECT_DESC
#endif
#ifndef VIRTIO_F_VERSION_1
#define VIRTIO_F_VERSION_1 NPA_VIRTIO_F_VERSION_1
#define VIRTIO_NET_F_MRG_RXBUF NPA_VIRTIO_NET_F_MRG_RXBUF
#define VIRTIO_NET_F_MQ NPA_VIRTIO_NET_F_MQ
#define VIRTIO_NET_HDR_GSO_NONE NPA_VIRTIO_NET_HDR_GSO_NONE
#endif

#endif  // NPA_HYPERVISOR_VHOST_VIRTIO_ABI_H_
