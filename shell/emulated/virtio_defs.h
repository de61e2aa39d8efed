// shell/emulated/virtio_defs.h — TRANSITIONAL (issue 7): the old, kernel-UAPI
// spellings of the virtio-net header and feature bits, for the shell files
// that have not moved to include/npa/virtio_ring.h yet: shell/offload.{h,cc},
// shell/offload_test.cc, shell/shell.cc, shell/shell_test.cc.
//
// Nothing is defined here: every name is an alias of the one definition in
// npa/virtio_ring.h, so the bytes cannot drift. The types are aliased inside
// npa::shell (all those files live there); the constants are macros, defined
// only if nobody defined them first. Do not include this in new code, and
// delete it once those files say npa_virtio_net_hdr_mrg_rxbuf /
// NPA_VIRTIO_NET_F_* / NPA_VIRTIO_NET_HDR_* / NPA_VIRTIO_F_VERSION_1.
#ifndef NPA_SHELL_EMULATED_VIRTIO_DEFS_H_
#define NPA_SHELL_EMULATED_VIRTIO_DEFS_H_

#include "npa/virtio_ring.h"

namespace npa::shell {
using virtio_net_hdr = ::npa_virtio_net_hdr;
using virtio_net_hdr_mrg_rxbuf = ::npa_virtio_net_hdr_mrg_rxbuf;
}  // namespace npa::shell

#ifndef VIRTIO_F_VERSION_1
#define VIRTIO_F_VERSION_1 NPA_VIRTIO_F_VERSION_1
#define VIRTIO_NET_F_CSUM NPA_VIRTIO_NET_F_CSUM
#define VIRTIO_NET_F_GUEST_CSUM NPA_VIRTIO_NET_F_GUEST_CSUM
#define VIRTIO_NET_F_HOST_TSO4 NPA_VIRTIO_NET_F_HOST_TSO4
#define VIRTIO_NET_F_HOST_TSO6 NPA_VIRTIO_NET_F_HOST_TSO6
#define VIRTIO_NET_F_MRG_RXBUF NPA_VIRTIO_NET_F_MRG_RXBUF
#define VIRTIO_NET_F_MQ NPA_VIRTIO_NET_F_MQ
#define VIRTIO_NET_HDR_F_NEEDS_CSUM NPA_VIRTIO_NET_HDR_F_NEEDS_CSUM
#define VIRTIO_NET_HDR_F_DATA_VALID NPA_VIRTIO_NET_HDR_F_DATA_VALID
#define VIRTIO_NET_HDR_GSO_NONE NPA_VIRTIO_NET_HDR_GSO_NONE
#define VIRTIO_NET_HDR_GSO_TCPV4 NPA_VIRTIO_NET_HDR_GSO_TCPV4
#define VIRTIO_NET_HDR_GSO_TCPV6 NPA_VIRTIO_NET_HDR_GSO_TCPV6
#define VIRTIO_NET_HDR_GSO_ECN NPA_VIRTIO_NET_HDR_GSO_ECN
#endif

#endif  // NPA_SHELL_EMULATED_VIRTIO_DEFS_H_
