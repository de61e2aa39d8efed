// shell/offload.h — npa_buf offload requests <-> virtio_net_hdr, and the
// software checksum used when the active path lacks the offload.
//
//   virtio_net_hdr_mrg_rxbuf* h = ...;   // 12 bytes before the frame
//   if (!EncodeTxHdr(b, dev_features, h)) drop(b);
//   ...
//   DecodeRxHdr(*h, b);                  // sets NPA_BUF_OL_RX_* on b
//
// Semantics follow VIRTIO 1.x 5.1.6.2 ("Packet Transmission"): for
// NPA_BUF_OL_TX_CSUM the application has stored the pseudo-header checksum
// in the L4 checksum field (as for Linux CHECKSUM_PARTIAL); the span from
// csum_start to the end of the frame is summed and the folded complement is
// stored at csum_start + csum_offset.
#ifndef NPA_SHELL_OFFLOAD_H_
#define NPA_SHELL_OFFLOAD_H_

#include "shell/emulated/virtio_defs.h"

#include <cstddef>
#include <cstdint>

#include "npa/buf.h"

namespace npa::shell {

// Size of the header the shell uses on every frame: VERSION_1 always has
// num_buffers (VIRTIO 1.x 5.1.6: "the header is 12 bytes").
inline constexpr uint32_t kNetHdrLen = sizeof(virtio_net_hdr_mrg_rxbuf);
static_assert(kNetHdrLen == 12, "virtio-net header layout");

// One's-complement sum of len bytes, not folded, not inverted: combine
// partial sums across segments with CsumAdd and finish with CsumFold.
uint64_t CsumPartial(const void* data, size_t len, uint64_t sum, bool odd_start);
uint16_t CsumFold(uint64_t sum);  // folded and inverted, network byte order

// Fill in the L4 checksum of frame b (all segments) in software, as the
// device would for VIRTIO_NET_HDR_F_NEEDS_CSUM. False when csum_start or
// csum_offset point outside the frame.
bool SoftwareChecksum(npa_buf* b);

// Build the TX header for b. dev_features: negotiated virtio feature bits.
// Returns false (drop the frame) when b asks for something no path can do
// here: TSO without HOST_TSO*, or offsets outside the frame.
bool EncodeTxHdr(npa_buf* b, uint64_t dev_features, virtio_net_hdr_mrg_rxbuf* h);

// Translate a received header into ol_flags / csum / tso fields of b.
void DecodeRxHdr(const virtio_net_hdr_mrg_rxbuf& h, npa_buf* b);

// 802.1Q in software, for a path without VLAN offload (virtio has none):
// InsertVlan writes the tag b->vlan_tci (TPID 0x8100) after the MAC
// addresses, into the headroom (data_off - 4), and moves csum_start with
// the frame; false if the first buffer is too short or lacks headroom.
// StripVlan removes an outer 0x8100 tag into vlan_tci and sets
// NPA_BUF_OL_RX_VLAN; false (frame unchanged) if there is none.
bool InsertVlan(npa_buf* b);
bool StripVlan(npa_buf* b);

}  // namespace npa::shell

#endif  // NPA_SHELL_OFFLOAD_H_
