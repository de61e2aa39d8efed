// shell/tso.h — TCP segmentation in software, for a path that lacks TSO
// (docs/architecture.md, "Data path": the offload set the guest sees is stable
// across paths; where the active path lacks one, the shell does it).
//
//   TsoPlan plan;
//   if (!PlanTso(frame, &plan)) drop(frame);              // not TSO-able
//   npa_buf* out[kMaxTsoSegments];
//   if (pool.Alloc(out, plan.nseg) == plan.nseg) {
//     SegmentTso(frame, plan, out);                      // frame untouched
//     send out[0..nseg), free frame
//   }
//
// What the application asks for (buf.h NPA_BUF_OL_TX_TSO4/6): a TCP frame
// whose payload is cut into tso_segsz-byte segments. Each segment gets the
// frame's Ethernet (+ one 802.1Q tag), IP and TCP headers, fixed the way a
// NIC does (Intel 82574 datasheet 7.3.6.2, "TCP segmentation"; Linux
// tcp_gso_segment): IPv4 total length, identification + i and header
// checksum; IPv6 payload length; TCP sequence number + offset; FIN and PSH
// only on the last segment, CWR only on the first; the TCP checksum in full
// (whatever the application left in the field is ignored).
//
// Limits (PlanTso refuses, the frame is dropped and counted as tx_bad):
// IPv6 with extension headers, IP fragments, headers not in the first
// buffer, a segment (headers + tso_segsz) larger than one buffer's data
// room, more than kMaxTsoSegments segments.
#ifndef NPA_SHELL_TSO_H_
#define NPA_SHELL_TSO_H_

#include <cstdint>

#include "npa/buf.h"

namespace npa::shell {

inline constexpr uint16_t kMaxTsoSegments = 64;  // 64 KiB / 1 KiB MSS

struct TsoPlan {
  uint16_t l2_len = 0, l3_len = 0, l4_len = 0;  // header lengths
  bool ipv6 = false;
  uint32_t payload = 0;  // TCP payload bytes over all segments
  uint16_t mss = 0;
  uint16_t nseg = 0;     // >= 1
  uint32_t hdr_len() const { return static_cast<uint32_t>(l2_len) + l3_len + l4_len; }
};

// True if b (TX frame, any number of buffers) can be segmented; fills *p.
bool PlanTso(const npa_buf* b, TsoPlan* p);

// Writes p.nseg one-buffer frames into out[0..p.nseg) (buffers from the
// caller, any header state). b is read, not changed.
void SegmentTso(const npa_buf* b, const TsoPlan& p, npa_buf* const* out);

}  // namespace npa::shell

#endif  // NPA_SHELL_TSO_H_
