/* Build-time check, no code: npa/virtio_ring.h (the one ring definition the
 * shell, npa-agent and the virtio_net plug-in use) describes the same bytes
 * and values as the kernel's UAPI headers, which DPDK, QEMU and the Linux
 * driver on the other side of our rings are built against. It is C because
 * <linux/virtio_ring.h> is not valid C++. Including both in one translation
 * unit also proves the npa_ / NPA_ names never clash with the kernel's. */
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stddef.h>

#include "npa/virtio_ring.h"

#define SAME_FIELD(a, b, f)                                                            \
  _Static_assert(offsetof(struct a, f) == offsetof(struct b, f) &&                      \
                     sizeof(((struct a *)0)->f) == sizeof(((struct b *)0)->f),          \
                 #a "." #f " differs from the kernel's " #b)

/* 2.7.5 */
_Static_assert(sizeof(struct npa_vring_desc) == sizeof(struct vring_desc), "desc size");
SAME_FIELD(npa_vring_desc, vring_desc, addr);
SAME_FIELD(npa_vring_desc, vring_desc, len);
SAME_FIELD(npa_vring_desc, vring_desc, flags);
SAME_FIELD(npa_vring_desc, vring_desc, next);
/* 2.7.6 */
SAME_FIELD(npa_vring_avail, vring_avail, flags);
SAME_FIELD(npa_vring_avail, vring_avail, idx);
_Static_assert(offsetof(struct npa_vring_avail, ring) == offsetof(struct vring_avail, ring), "avail.ring");
/* 2.7.8 */
_Static_assert(sizeof(struct npa_vring_used_elem) == sizeof(struct vring_used_elem), "used elem size");
SAME_FIELD(npa_vring_used_elem, vring_used_elem, id);
SAME_FIELD(npa_vring_used_elem, vring_used_elem, len);
SAME_FIELD(npa_vring_used, vring_used, flags);
SAME_FIELD(npa_vring_used, vring_used, idx);
_Static_assert(offsetof(struct npa_vring_used, ring) == offsetof(struct vring_used, ring), "used.ring");
_Static_assert(NPA_VRING_DESC_ALIGN == VRING_DESC_ALIGN_SIZE && NPA_VRING_AVAIL_ALIGN == VRING_AVAIL_ALIGN_SIZE &&
                   NPA_VRING_USED_ALIGN == VRING_USED_ALIGN_SIZE,
               "2.7 alignments");

_Static_assert(NPA_VRING_DESC_F_NEXT == VRING_DESC_F_NEXT && NPA_VRING_DESC_F_WRITE == VRING_DESC_F_WRITE &&
                   NPA_VRING_DESC_F_INDIRECT == VRING_DESC_F_INDIRECT,
               "descriptor flags");
_Static_assert(NPA_VRING_USED_F_NO_NOTIFY == VRING_USED_F_NO_NOTIFY &&
                   NPA_VRING_AVAIL_F_NO_INTERRUPT == VRING_AVAIL_F_NO_INTERRUPT,
               "notification suppression flags");

/* 2.8.13 / 2.8.10 */
_Static_assert(sizeof(struct npa_vring_packed_desc) == sizeof(struct vring_packed_desc), "packed desc size");
SAME_FIELD(npa_vring_packed_desc, vring_packed_desc, addr);
SAME_FIELD(npa_vring_packed_desc, vring_packed_desc, len);
SAME_FIELD(npa_vring_packed_desc, vring_packed_desc, id);
SAME_FIELD(npa_vring_packed_desc, vring_packed_desc, flags);
SAME_FIELD(npa_vring_packed_desc_event, vring_packed_desc_event, off_wrap);
SAME_FIELD(npa_vring_packed_desc_event, vring_packed_desc_event, flags);
_Static_assert(NPA_VRING_PACKED_DESC_F_AVAIL == VRING_PACKED_DESC_F_AVAIL &&
                   NPA_VRING_PACKED_DESC_F_USED == VRING_PACKED_DESC_F_USED &&
                   NPA_VRING_PACKED_EVENT_FLAG_ENABLE == VRING_PACKED_EVENT_FLAG_ENABLE &&
                   NPA_VRING_PACKED_EVENT_FLAG_DISABLE == VRING_PACKED_EVENT_FLAG_DISABLE &&
                   NPA_VRING_PACKED_EVENT_FLAG_DESC == VRING_PACKED_EVENT_FLAG_DESC &&
                   NPA_VRING_PACKED_EVENT_F_WRAP_CTR == VRING_PACKED_EVENT_F_WRAP_CTR,
               "packed ring flags");

_Static_assert(NPA_VIRTIO_F_RING_INDIRECT_DESC == VIRTIO_RING_F_INDIRECT_DESC &&
                   NPA_VIRTIO_F_RING_EVENT_IDX == VIRTIO_RING_F_EVENT_IDX &&
                   NPA_VIRTIO_F_VERSION_1 == VIRTIO_F_VERSION_1 &&
                   NPA_VIRTIO_F_ACCESS_PLATFORM == VIRTIO_F_ACCESS_PLATFORM &&
                   NPA_VIRTIO_F_RING_PACKED == VIRTIO_F_RING_PACKED &&
                   NPA_VIRTIO_F_IN_ORDER == VIRTIO_F_IN_ORDER,
               "device-independent feature bits");
#ifdef VIRTIO_F_NOTIFICATION_DATA /* newer UAPI headers only (not Debian 12's) */
_Static_assert(NPA_VIRTIO_F_NOTIFICATION_DATA == VIRTIO_F_NOTIFICATION_DATA, "notification data");
#endif
_Static_assert(NPA_VIRTIO_NET_F_CSUM == VIRTIO_NET_F_CSUM && NPA_VIRTIO_NET_F_GUEST_CSUM == VIRTIO_NET_F_GUEST_CSUM &&
                   NPA_VIRTIO_NET_F_MTU == VIRTIO_NET_F_MTU && NPA_VIRTIO_NET_F_MAC == VIRTIO_NET_F_MAC &&
                   NPA_VIRTIO_NET_F_GUEST_TSO4 == VIRTIO_NET_F_GUEST_TSO4 &&
                   NPA_VIRTIO_NET_F_GUEST_TSO6 == VIRTIO_NET_F_GUEST_TSO6 &&
                   NPA_VIRTIO_NET_F_HOST_TSO4 == VIRTIO_NET_F_HOST_TSO4 &&
                   NPA_VIRTIO_NET_F_HOST_TSO6 == VIRTIO_NET_F_HOST_TSO6 &&
                   NPA_VIRTIO_NET_F_MRG_RXBUF == VIRTIO_NET_F_MRG_RXBUF &&
                   NPA_VIRTIO_NET_F_STATUS == VIRTIO_NET_F_STATUS &&
                   NPA_VIRTIO_NET_F_CTRL_VQ == VIRTIO_NET_F_CTRL_VQ && NPA_VIRTIO_NET_F_MQ == VIRTIO_NET_F_MQ &&
                   NPA_VIRTIO_NET_F_CTRL_MAC_ADDR == VIRTIO_NET_F_CTRL_MAC_ADDR &&
                   NPA_VIRTIO_NET_F_SPEED_DUPLEX == VIRTIO_NET_F_SPEED_DUPLEX,
               "virtio-net feature bits");

/* 5.1.6 */
_Static_assert(sizeof(struct npa_virtio_net_hdr) == sizeof(struct virtio_net_hdr), "net hdr size");
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, flags);
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, gso_type);
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, hdr_len);
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, gso_size);
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, csum_start);
SAME_FIELD(npa_virtio_net_hdr, virtio_net_hdr, csum_offset);
_Static_assert(sizeof(struct npa_virtio_net_hdr_mrg_rxbuf) == sizeof(struct virtio_net_hdr_mrg_rxbuf),
               "mrg_rxbuf size");
SAME_FIELD(npa_virtio_net_hdr_mrg_rxbuf, virtio_net_hdr_mrg_rxbuf, num_buffers);
_Static_assert(sizeof(struct npa_virtio_net_hdr_v1) == sizeof(struct virtio_net_hdr_v1), "v1 size");
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, flags);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, gso_type);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, hdr_len);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, gso_size);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, csum_start);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, csum_offset);
SAME_FIELD(npa_virtio_net_hdr_v1, virtio_net_hdr_v1, num_buffers);
_Static_assert(NPA_VIRTIO_NET_HDR_F_NEEDS_CSUM == VIRTIO_NET_HDR_F_NEEDS_CSUM &&
                   NPA_VIRTIO_NET_HDR_F_DATA_VALID == VIRTIO_NET_HDR_F_DATA_VALID &&
                   NPA_VIRTIO_NET_HDR_GSO_NONE == VIRTIO_NET_HDR_GSO_NONE &&
                   NPA_VIRTIO_NET_HDR_GSO_TCPV4 == VIRTIO_NET_HDR_GSO_TCPV4 &&
                   NPA_VIRTIO_NET_HDR_GSO_UDP == VIRTIO_NET_HDR_GSO_UDP &&
                   NPA_VIRTIO_NET_HDR_GSO_TCPV6 == VIRTIO_NET_HDR_GSO_TCPV6 &&
                   NPA_VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_ECN,
               "net header flags and GSO types");

/* ISO C forbids an empty translation unit. */
int npa_virtio_layout_checked_(void);
int npa_virtio_layout_checked_(void) { return 1; }
