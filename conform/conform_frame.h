// conform/conform_frame.h — the frames npa-conform sends between the device
// under test and the traffic peer (docs/conformance.md). A frame is
//
//   dst MAC (6) | src MAC (6) | EtherType 0x88b5 (2) | "NPAC" (4) |
//   run id (4) | sequence number (4) | payload, byte i = (seq + i) mod 256
//
// 0x88b5 is IEEE 802's local experimental EtherType, so nothing else on a
// QEMU hub speaks it; the run id keeps a previous run's stale frames out;
// the payload pattern depends on the sequence number, so a frame that comes
// back with another frame's bytes (a ring that mixed up buffers) is corrupt,
// not merely late. Run id and sequence number are host order: the peer and
// the DUT are one machine.
//
//   uint8_t f[64];
//   FillFrame(f, sizeof f, peer_mac, dut_mac, run, seq);
//   uint32_t got;
//   if (CheckFrame(f, sizeof f, run, &got) == FrameCheck::kIntact) ...  // got == seq
//
// Pure functions, no state: any thread.
#ifndef NPA_CONFORM_CONFORM_FRAME_H_
#define NPA_CONFORM_CONFORM_FRAME_H_

#include <cstddef>
#include <cstdint>

#include "npa/buf.h"

namespace npa::conform {

inline constexpr uint16_t kFrameEtherType = 0x88b5;
// eth (14) + magic (4) + run (4) + seq (4): the shortest frame FillFrame writes.
inline constexpr size_t kFrameHdr = 26;

// Writes a frame of len (>= kFrameHdr) bytes at p.
void FillFrame(uint8_t* p, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t run,
               uint32_t seq);

enum class FrameCheck {
  kNotOurs,  // another EtherType, magic or run: ignored, not an error
  kCorrupt,  // ours, but a payload byte is wrong
  kIntact,   // ours and intact: *seq is its sequence number
};
FrameCheck CheckFrame(const uint8_t* p, size_t len, uint32_t run, uint32_t* seq);

// Copies a (possibly chained) frame into out, at most cap bytes and 64
// segments; returns the bytes copied.
size_t LinearizeFrame(const npa_buf* b, uint8_t* out, size_t cap);

}  // namespace npa::conform

#endif  // NPA_CONFORM_CONFORM_FRAME_H_
