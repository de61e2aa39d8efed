// shell/vf/tx_tracker.h — which TX frames a VF's plug-in holds and has not
// completed, per queue, so that giving the VF up in a hurry (VFIO REQ or
// ERR, a timed-out quiesce) reports exactly how many frames were lost
// (RevokeDone.tx_inflight_lost, npa_queue_stats.tx_vf_lost). What the
// plug-in hands back at stop cannot tell: its RX ring buffers come back the
// same way as unsent TX frames.
//
//   TxTracker t;
//   NPA_RETURN_IF_ERROR(t.Init(slots_lo, slots_hi));   // the shell's slot range
//   TxTracker::View v = t.view();   // per burst: the range and bitmap in registers
//   v.Mark(frame);                  // VF TX burst: each frame handed to the plug-in
//   v.Clear(buf);                   // the plug-in's buf_free: completion (or stop)
//   uint64_t held = t.outstanding();   // control thread, queue parked
//   uint64_t leaked = t.Reset();       // after stop: forget every mark
//
// One byte per buffer slot (a store each way; a bitmap's read-modify-write
// with a variable shift cost 8-11 instructions more per frame under
// callgrind), keyed by the slot's place in the shell's slot range; only a
// frame's first segment is marked, so a frame counts once.
// Pointers outside the range or not at a slot start are ignored (a stray
// pointer cannot corrupt the bitmap). Mark and Clear are a few instructions
// with no branch on the mark (docs/PERFORMANCE.md, "VF path dispatch"); the
// count is taken only when a VF is given up.
//
// Counted mode (a plug-in with NPA_PLUGIN_F_TX_FREE, plugin.h "TX
// completions apart"): such a plug-in returns TX frames through its own
// service, so the tracker keeps one count per queue instead of a mark per
// frame: Sent(n) before each tx_burst, Unsent(k) for what it did not take,
// Completed(n) per buf_free_tx call. view() is empty then (Mark and Clear do
// nothing), and outstanding() is the count. A completion beyond the count is
// a plug-in bug: the count stops at 0 and the excess is kept apart
// (excess_completions), so it never wraps into a huge loss.
//
//   t.SetCounted(true);           // control thread, before the VF's queues run
//   t.Sent(n); ...; t.Unsent(n - sent);   // VF TX burst
//   t.Completed(k);               // the plug-in's buf_free_tx
//
// Threading: the queue's owner thread (its TX burst, and the plug-in's
// buf_free on that queue, which plugin.h confines to the queue's thread) or
// the control thread while the owner is parked by a switch; the switch's
// ack orders the two. No atomics: this runs per frame on the VF fast path.
#ifndef NPA_SHELL_VF_TX_TRACKER_H_
#define NPA_SHELL_VF_TX_TRACKER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "npa/buf.h"

namespace npa::shell {

class TxTracker {
 public:
  // The hot part, copied into locals for a burst.
  struct View {
    uintptr_t lo = 0;
    uint64_t nslots = 0;  // 0: every pointer ignored
    uint8_t* marks = nullptr;

    void Mark(const npa_buf* b) const {
      uint64_t i;
      if (Index(b, &i)) marks[i] = 1;
    }
    void Clear(const npa_buf* b) const {
      uint64_t i;
      if (Index(b, &i)) marks[i] = 0;
    }
    // NPA_BUF_SLOT_SIZE is 128 * 17. An offset is a slot start iff its low
    // 7 bits are 0 and off >> 7 is a multiple of 17; times 17's inverse
    // modulo 2^64 that is exactly off / NPA_BUF_SLOT_SIZE, and any other
    // value (or an offset below lo, wrapped) lands far beyond nslots. One
    // multiply, no division.
    bool Index(const npa_buf* b, uint64_t* i) const {
      const uintptr_t off = reinterpret_cast<uintptr_t>(b) - lo;
      *i = (off >> 7) * kInverse17;
      return ((off & 127) == 0) & (*i < nslots);
    }
  };
  static constexpr uint64_t kInverse17 = 0xf0f0f0f0f0f0f0f1ull;  // 17 * this == 1 mod 2^64
  static_assert(NPA_BUF_SLOT_SIZE == 17 * 128, "Index() divides by 17 * 128");

  // [lo, hi): every buffer slot of the shell, NPA_BUF_SLOT_SIZE apart from lo.
  absl::Status Init(uintptr_t lo, uintptr_t hi);
  View view() { return counted_ ? View{} : View{lo_, nslots_, marks_.data()}; }

  // Control thread, while no frame is held (after Reset, before a VF's
  // queues run): per-frame marks (false, the default) or a count.
  void SetCounted(bool on) { counted_ = on; }
  bool counted() const { return counted_; }
  void Sent(uint16_t n) { held_ += n; }
  void Unsent(uint16_t n) { Completed(n); }
  void Completed(uint16_t n) {
    if (n > held_) [[unlikely]] {
      excess_ += n - held_;
      held_ = 0;
      return;
    }
    held_ -= n;
  }
  // Completions a counted plug-in reported beyond what it held (a bug).
  uint64_t excess_completions() const { return excess_; }

  void Mark(const npa_buf* b) { view().Mark(b); }
  // True if b was marked (a TX frame the plug-in held): now cleared.
  bool Clear(const npa_buf* b);
  // Frames marked and not cleared (a scan: control path only), or the count.
  uint64_t outstanding() const;
  // Forgets every mark, the count and the excess; returns how many frames
  // were held. The mode stays.
  uint64_t Reset();

 private:
  uintptr_t lo_ = 0;
  uint64_t nslots_ = 0;
  std::vector<uint8_t> marks_;
  bool counted_ = false;
  uint64_t held_ = 0;
  uint64_t excess_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_TX_TRACKER_H_
