// shell/vf/drain_grace.h — when a queue's VF RX is drained during a revoke
// or fallback (DRAINING, vf_switch.h step 3). Pure: counts and times in,
// a decision out; no clock, no device.
#ifndef NPA_SHELL_VF_DRAIN_GRACE_H_
#define NPA_SHELL_VF_DRAIN_GRACE_H_

#include <cstdint>
#include <vector>

namespace npa::shell {

// DRAINING's end, per queue (vf_switch.cc Drain). When TX moves to the
// emulated path, frames for the guest are still on their way to the VF: in a
// learning switch that keeps sending the guest's MAC to the VF's port until
// it sees the guest's first frame from the emulated path or the agent's
// RARP on its uplink (npa-agent announces it once the VF is released), on
// the wire, in the device's FIFO. The VF's RX is therefore drained not just
// until one burst comes back empty, but for a bounded grace: a queue is
// drained once a VF RX burst came back empty AND either nothing arrived
// from the VF for quiet_ns, or grace_ns passed since DRAINING began. Frames
// that reach the VF after that are lost at the VF's reset (the agent's
// announcement bounds how long the switch keeps sending them there).
// Control thread only; one per release. Allocates once, at construction.
//
//   DrainGrace g(n, MonotonicNs());
//   ... each look at queue q: g.Drained(q, counters.rx_vf, vf->rx_drained(q), MonotonicNs())
//   g.frames()  // VF frames delivered while DRAINING (the log line)
class DrainGrace {
 public:
  struct Options {
    uint64_t grace_ns = 50'000'000;  // at most this long after DRAINING began
    uint64_t quiet_ns = 10'000'000;  // nothing from the VF for this long: done early
  };
  DrainGrace(uint16_t queues, uint64_t start_ns) : DrainGrace(queues, start_ns, Options{}) {}
  DrainGrace(uint16_t queues, uint64_t start_ns, Options o);
  // One look at queue q: its VF RX frame count (QueueCounters::rx_vf, which
  // only grows) and whether a VF RX burst came back empty since DRAINING
  // began. true: q is drained. The first look at q takes its count as the
  // base, and the start as its last arrival.
  bool Drained(uint16_t q, uint64_t rx_vf, bool empty_burst_seen, uint64_t now_ns);
  // VF RX frames the queues received during DRAINING (as last looked at).
  uint64_t frames() const;

 private:
  struct Q {
    bool seen = false;
    uint64_t base = 0, last = 0, last_change_ns = 0;
  };
  Options o_;
  uint64_t start_ns_;
  std::vector<Q> q_;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_DRAIN_GRACE_H_
