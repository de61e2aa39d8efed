// hypervisor/daemon/idle_policy.h — what the dataplane thread does after a
// poll: poll again, wait a moderation interval, or sleep until kicked.
//
//   IdlePolicy idle({.spins = 2000, .coalesce_ns = 500'000});
//   for (;;) {
//     uint32_t work = PollOnce(now);
//     switch (idle.After(work, now)) {
//       case IdleAction::kPoll: break;
//       case IdleAction::kWait: WaitEvents(idle.wait_ns()); break;  // kicks stay off
//       case IdleAction::kSleep: Sleep(); break;                   // arm kicks, epoll
//     }
//   }
//
// Two regimes:
//  - coalesce_ns == 0 (the default): busy-poll while there is work; after
//    `spins` empty polls in a row, sleep until a guest kicks (kSleep). Lowest
//    latency; at light load every frame costs a kick and a wake-up of the
//    agent, and an interrupt and a wake-up of the guest.
//  - coalesce_ns > 0: interrupt moderation, what a NIC's interrupt throttle
//    (e1000e ITR, ethtool rx-usecs) does. The first empty poll after work
//    makes the thread wait coalesce_ns without asking guests for kicks
//    (kWait), then it polls again and takes whatever queued meanwhile in one
//    pass, so each guest's RX ring gets at most one interrupt per interval
//    and no guest kicks while traffic flows. A frame waits at most
//    coalesce_ns (+ a wake-up) longer than without moderation. After
//    kDeepIdleNs (or 8 intervals, whichever is longer) without any work, the
//    thread sleeps until kicked (kSleep), so an idle agent does not wake
//    every interval forever. `spins` does not apply in this regime: spinning
//    through the gaps is exactly what moderation avoids.
// Work at any time resets both regimes. The policy reads no clock: the
// caller passes `now` (a monotonic ns value that may be a few loops stale).
//
// Threading: owned by the dataplane thread; not thread-safe.
#ifndef NPA_HYPERVISOR_DAEMON_IDLE_POLICY_H_
#define NPA_HYPERVISOR_DAEMON_IDLE_POLICY_H_

#include <algorithm>
#include <cstdint>

namespace npa::agent {

enum class IdleAction { kPoll, kWait, kSleep };

class IdlePolicy {
 public:
  // No work for this long (and at least 8 intervals) ends moderation: the
  // next idle step is a sleep until kicked.
  static constexpr uint64_t kDeepIdleNs = 10'000'000;
  // The largest moderation interval the agent accepts (--coalesce-us).
  static constexpr uint64_t kMaxCoalesceNs = 10'000'000;

  struct Options {
    uint32_t spins = 2000;     // empty polls before a sleep (no moderation)
    uint64_t coalesce_ns = 0;  // 0: no moderation; else 1..kMaxCoalesceNs
  };

  explicit IdlePolicy(Options o)
      : o_(o), deep_ns_(std::max<uint64_t>(kDeepIdleNs, 8 * o.coalesce_ns)) {}

  // After a poll that did `work` (frames or descriptors) at `now`.
  IdleAction After(uint32_t work, uint64_t now) {
    if (work) {
      idle_ = 0;
      last_work_ns_ = now;
      return IdleAction::kPoll;
    }
    if (o_.coalesce_ns == 0) {
      if (++idle_ < o_.spins) return IdleAction::kPoll;
      idle_ = 0;
      return IdleAction::kSleep;
    }
    // Moderation. last_work_ns_ == 0: nothing since start, sleep at once.
    // A sleep woken by a kick or the uplink is followed by a poll that finds
    // that work; one woken by its timeout finds none and sleeps again, so
    // an idle agent wakes only at the sleep's own timeout.
    if (last_work_ns_ == 0 || now - last_work_ns_ >= deep_ns_) return IdleAction::kSleep;
    return IdleAction::kWait;
  }

  uint64_t wait_ns() const { return o_.coalesce_ns; }
  bool moderated() const { return o_.coalesce_ns != 0; }

 private:
  Options o_;
  uint64_t deep_ns_;
  uint32_t idle_ = 0;
  uint64_t last_work_ns_ = 0;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_IDLE_POLICY_H_
