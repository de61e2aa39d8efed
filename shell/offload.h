// shell/offload.h — npa_buf offload requests <-> virtio_net_hdr, and the
// software checksum used when the active path lacks the offload.
//
//   virtio_net_hdr_mrg_rxbuf* h = ...;   // 12 bytes before the frame
//   if (!EncodeTxHdr(b, dev_features, h)) drop(b);
//   ...
//   if (!DecodeRxHdr(*h, frame_len, b)) drop(b);   // sets NPA_BUF_OL_RX_* on b
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
// frame_len: the frame's bytes over all its buffers. The header comes from
// the back end and is bounded before anything is taken from it: false (drop
// the frame, count it) when NEEDS_CSUM names a span outside the frame
// (csum_start below the Ethernet header or csum_start + csum_offset + 2 past
// frame_len), the GSO type is unknown, or a GSO frame has gso_size 0.
bool DecodeRxHdr(const virtio_net_hdr_mrg_rxbuf& h, uint32_t frame_len, npa_buf* b);

// The offload facts a received frame may carry (NPA_BUF_OL_RX_*): anything
// else a device or plug-in sets on an RX buffer is cleared, so a frame the
// application sends back cannot carry a TX request it never made.
inline constexpr uint32_t kRxOlFlags = NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_RX_CSUM_PARTIAL |
                                       NPA_BUF_OL_RX_VLAN | NPA_BUF_OL_RX_RSS_HASH |
                                       NPA_BUF_OL_RX_GSO;
// Bytes before an L4 header can start (an untagged Ethernet header).
inline constexpr uint32_t kMinCsumStart = 14;

// The longest chain a device or plug-in may hand up: a 64 KiB frame in the
// smallest data room (NPA_BUF_DATA_ROOM) is 32 segments.
inline constexpr uint32_t kMaxRxSegments = 64;

// What is wrong with a received frame's metadata, the first fault found.
enum class RxFrameFault : uint8_t {
  kNone = 0,
  kTooManySegments,  // a longer chain than max_segs (or a loop)
  kForeignSegment,   // a further segment is not a buffer out of the pools
  kOutsideSlot,      // a segment's data_off/data_len leave its slot or cover its header
  kPktLen,           // pkt_len is not the sum of the segments' data_len
  kNbSegs,           // nb_segs is not the chain's length
  kCsumSpan,         // CSUM_PARTIAL names a span outside the frame
  kGsoSize,          // GSO with tso_segsz 0
};
inline const char* RxFrameFaultName(RxFrameFault f) {
  switch (f) {
    case RxFrameFault::kNone: return "none";
    case RxFrameFault::kTooManySegments: return "a chain longer than the segment limit";
    case RxFrameFault::kForeignSegment: return "a segment that is not a held buffer";
    case RxFrameFault::kOutsideSlot: return "data_off/data_len outside the slot";
    case RxFrameFault::kPktLen: return "pkt_len is not the sum of data_len";
    case RxFrameFault::kNbSegs: return "nb_segs is not the chain's length";
    case RxFrameFault::kCsumSpan: return "CSUM_PARTIAL span outside the frame";
    case RxFrameFault::kGsoSize: return "GSO with tso_segsz 0";
  }
  return "unknown";
}

// Bounds a received frame's metadata that a device or plug-in wrote into
// its buffers, without changing it. b: the head, already known to be a
// buffer of the shell. Checks each segment's data_off and data_len against
// the slot, pkt_len against the segments, nb_segs against the chain (at most
// max_segs); for CSUM_PARTIAL the span must lie inside the frame and for GSO
// tso_segsz must be non-zero (only the RX facts of ol_flags, kRxOlFlags,
// count). held(seg) decides whether each further segment is a buffer of the
// shell that is out of the pools. The shell's VF path (NPA_SHELL_F_CHECK_PLUGIN_RX)
// and npa-conform, which checks a plug-in's RX discipline, both use it.
template <typename Held>
RxFrameFault FindRxFrameFault(const npa_buf* b, uint32_t max_segs, Held&& held) {
  uint32_t total = 0, segs = 0;
  for (const npa_buf* s = b; s != nullptr; s = s->next) {
    if (++segs > max_segs) return RxFrameFault::kTooManySegments;
    if (s != b && !held(s)) return RxFrameFault::kForeignSegment;
    if (s->data_off < NPA_BUF_META_SIZE ||
        static_cast<uint32_t>(s->data_off) + s->data_len > NPA_BUF_SLOT_SIZE)
      return RxFrameFault::kOutsideSlot;
    total += s->data_len;
  }
  if (total != b->pkt_len) return RxFrameFault::kPktLen;
  if (segs != b->nb_segs) return RxFrameFault::kNbSegs;
  const uint32_t ol = b->ol_flags & kRxOlFlags;
  if ((ol & NPA_BUF_OL_RX_CSUM_PARTIAL) &&
      (b->csum_start < kMinCsumStart ||
       static_cast<uint32_t>(b->csum_start) + b->csum_offset + 2 > total))
    return RxFrameFault::kCsumSpan;
  if ((ol & NPA_BUF_OL_RX_GSO) && b->tso_segsz == 0) return RxFrameFault::kGsoSize;
  return RxFrameFault::kNone;
}

// FindRxFrameFault, then the ol_flags bits that are not RX facts cleared.
// False: drop the frame.
template <typename Held>
bool CheckRxFrame(npa_buf* b, uint32_t max_segs, Held&& held) {
  if (FindRxFrameFault(b, max_segs, held) != RxFrameFault::kNone) return false;
  b->ol_flags &= kRxOlFlags;
  return true;
}

// 802.1Q in software, for a path without VLAN offload (virtio has none):
// InsertVlan writes the tag b->vlan_tci (TPID 0x8100) after the MAC
// addresses, into the headroom (data_off - 4), and moves csum_start with
// the frame; false if the first buffer is too short or lacks headroom.
// StripVlan removes an outer 0x8100 tag into vlan_tci and sets
// NPA_BUF_OL_RX_VLAN; false (frame unchanged) if there is none. A partial
// checksum whose start lies inside the tag (nonsense) loses its flag.
bool InsertVlan(npa_buf* b);
bool StripVlan(npa_buf* b);

}  // namespace npa::shell

#endif  // NPA_SHELL_OFFLOAD_H_
