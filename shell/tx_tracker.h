// shell/tx_tracker.h — which TX frames a VF's plug-in holds and has not
// completed, per queue, so that giving the VF up in a hurry (VFIO REQ or
// ERR, a timed-out quiesce) reports exactly how many frames were lost
// (RevokeDone.tx_inflight_lost, npa_queue_stats.tx_vf_lost). What the
// plug-in hands back at stop cannot tell: its RX ring buffers come back the
// same way as unsent TX frames.
//
//   TxTracker t;
//   NPA_RETURN_IF_ERROR(t.Init(slots_lo, slots_hi));   // the shell's slot range
//   t.Mark(frame);          // VF TX burst: each frame the plug-in accepted
//   t.Clear(buf);           // plug-in's buf_free: a completion (or stop)
//   uint64_t held = t.outstanding();
//   uint64_t leaked = t.Reset();   // after stop: forget every mark
//
// One bit per buffer slot, keyed by the slot's place in the shell's slot
// range; only a frame's first segment is marked, so a frame counts once.
// Pointers outside the range or not at a slot start are ignored (a stray
// pointer cannot corrupt the bitmap). Threading: the queue's owner thread
// (its TX burst, and the plug-in's buf_free on that queue, which plugin.h
// confines to the queue's thread) or the control thread while the owner is
// parked by a switch; the switch's ack orders the two. No atomics: this
// runs per frame on the VF fast path.
#ifndef NPA_SHELL_TX_TRACKER_H_
#define NPA_SHELL_TX_TRACKER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "npa/buf.h"

namespace npa::shell {

class TxTracker {
 public:
  // [lo, hi): every buffer slot of the shell, NPA_BUF_SLOT_SIZE apart from lo.
  absl::Status Init(uintptr_t lo, uintptr_t hi);

  void Mark(const npa_buf* b) {
    uint64_t i;
    if (!Index(b, &i)) return;
    uint64_t& w = bits_[i >> 6];
    const uint64_t m = 1ull << (i & 63);
    outstanding_ += (w & m) == 0;
    w |= m;
  }
  // True if b was marked (a TX frame the plug-in held): now cleared.
  bool Clear(const npa_buf* b) {
    uint64_t i;
    if (!Index(b, &i)) return false;
    uint64_t& w = bits_[i >> 6];
    const uint64_t m = 1ull << (i & 63);
    if ((w & m) == 0) return false;
    w &= ~m;
    outstanding_--;
    return true;
  }
  uint64_t outstanding() const { return outstanding_; }
  // Forgets every mark; returns how many there were.
  uint64_t Reset();

 private:
  bool Index(const npa_buf* b, uint64_t* i) const {
    const uintptr_t off = reinterpret_cast<uintptr_t>(b) - lo_;
    if (off >= span_ || off % NPA_BUF_SLOT_SIZE != 0) return false;
    *i = off / NPA_BUF_SLOT_SIZE;
    return true;
  }

  uintptr_t lo_ = 0, span_ = 0;  // span_ 0 until Init: every pointer ignored
  std::vector<uint64_t> bits_;
  uint64_t outstanding_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_TX_TRACKER_H_
