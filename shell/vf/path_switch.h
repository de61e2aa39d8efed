// shell/vf/path_switch.h — which path a shell's queues run on, and every
// step of moving them between the emulated path and a VF, as one table
// (common/state_machine.h). vf_switch.cc drives it: it fires the outside
// events (an offer, a revoke, VFIO REQ/ERR, the shell stopping), runs the
// step of each state it passes through, and feeds the machine what each step
// produced — the plug-in's start, quiesce and release results, and each
// queue's acknowledgement of newly staged ops.
//
//   PathSwitch m;                                 // EMULATED
//   NPA_RETURN_IF_ERROR(m.Fire(PathEvent::kOffer));    // ATTACHING: probe..start
//   NPA_RETURN_IF_ERROR(m.Fire(PathEvent::kStartOk));  // ENTERING
//   stage the VF's ops on every queue, then
//   NPA_RETURN_IF_ERROR(m.ExpectAcks(nqueues, MonotonicNs() + bound));
//   while (m.awaiting()) {
//     for each queue q that cleared switch_pending: NPA_RETURN_IF_ERROR(m.Ack(q));
//     NPA_RETURN_IF_ERROR(m.Tick(MonotonicNs()));
//   }                                             // ON_VF: last ack, or the bound
//   absl::Status s = m.Fire(PathEvent::kOffer);
//   // s = FailedPrecondition("path switch: offer is illegal in state ON_VF")
//
// States (docs/architecture.md "Switching"):
//   EMULATED   every queue on the emulated path; no VF. Rests here.
//   ATTACHING  a VfOffer was taken: plug-in loaded, probe -> get_caps ->
//              configure -> start, on the control thread.
//   ENTERING   the VF's ops are staged on every queue; each queue's owner
//              acknowledges them at its next burst.
//   ON_VF      the queues run on the VF. Rests here.
//   LEAVING    TX and RX taken off the VF (quiet ops staged), so that no fast
//              op runs while the plug-in quiesces; acks awaited.
//   QUIESCING  the plug-in's quiesce: the VF finishes the TX it holds.
//   DRAINING   the VF's RX polled again (drain ops staged); a queue's ack
//              here is "applied the ops, and a VF RX burst came back empty".
//   RETURNING  emulated-only ops staged; acks awaited.
//   RELEASING  the plug-in stopped (it hands every buffer back) and removed,
//              the device fd closed.
// Which agent serves the emulated rings (shell/reconnect.h, migration and
// agent restart; docs/migration.md):
//   MIGRATE_STOPPED  MigratePrepare took every vring off the source's back
//              end (GET_VRING_BASE); rings and buffers untouched, TX waits
//              in the rings, no RX. Rests here until MigrateAbort (rings
//              restarted on the same back end -> EMULATED), MigrateCommit
//              (-> RECONNECTING) or the session's loss (-> RECONNECTING).
//   RECONNECTING  the shell connects (destination, return path, or the same
//              agent after it restarted) with Hello.resume and sets its
//              rings up on the new back end at the indices; -> EMULATED
//              once resumed, DETACHED if nothing answered in time.
//   DETACHED   no agent serves the rings; they are kept as they are (a
//              frame waits, none is lost), the application had
//              NPA_EVENT_ERROR. Rests here between retries (every second,
//              until the shell closes: session lost -> RECONNECTING).
// A VF is left running while its agent restarts (the device fd is the
// shell's): ON_VF -- session lost --> ON_VF; the reconnect runs beside it.
//
// Events: the outside ones (offer, revoke, VFIO REQ, VFIO ERR, shell stop)
// are checked against the table before anything is done; a refused one is
// answered by the caller (a VfAccept with accepted=false and the reason, or
// a log line for a revoke of an offer already released, which the protocol
// makes idempotent). The rest are the steps' own results: start ok/failed,
// acked / ack timed out (every waiting state; fed by Ack and Tick), quiesce
// done / timed out, released, and abandon — the way out when a step could
// not go on (its event was refused, which only a bug in the driver can
// cause): the switch skips to putting the queues back on the emulated path
// and releasing the VF, so a device is never kept by a confused switch.
//
// A queue whose owner does not burst before the bound is taken as idle (ack
// timed out): its staged ops are applied at its next burst, whenever that is.
//
// Extending: add the
// states and events to the enums and their names, the arcs to kArcs, and
// the states' steps to the driver (vf_switch.cc Drive); path_switch_test
// lists every legal pair, so it must be told too.
//
// Threads and ownership: one PathSwitch per shell (npa_shell::path), used
// only under npa_shell::vf_mu — by the control thread (offers, revokes,
// REQ/ERR) and by npa_shell_stop/close. No internal locking. Owner threads
// never touch it: their ack is the switch_pending flag they clear, which
// the control thread reads and feeds to Ack().
#ifndef NPA_SHELL_VF_PATH_SWITCH_H_
#define NPA_SHELL_VF_PATH_SWITCH_H_

#include <bitset>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "common/state_machine.h"
#include "npa/shell.h"

namespace npa::shell {

enum class PathState : uint8_t {
  kEmulated,
  kAttaching,
  kEntering,
  kOnVf,
  kLeaving,
  kQuiescing,
  kDraining,
  kReturning,
  kReleasing,
  kMigrateStopped,
  kReconnecting,
  kDetached,
};

enum class PathEvent : uint8_t {
  kOffer,            // a VfOffer with a device fd
  kStartOk,          // probe..start succeeded
  kStartFailed,      // no plug-in, or probe..start failed
  kAcked,            // the last queue acknowledged the staged ops
  kAckTimedOut,      // the bound expired first; the rest are idle
  kRevoke,           // the agent's planned Revoke
  kDeviceReq,        // VFIO REQ: the agent wants the device back
  kDeviceErr,        // VFIO ERR: the device failed
  kShellStop,        // npa_shell_stop / npa_shell_close
  kQuiesceDone,      // the plug-in reported idle
  kQuiesceTimedOut,  // still busy at the bound (or quiesce failed)
  kReleased,         // stop, remove, close done
  kAbandon,          // a step could not go on: straight to the release
  kMigratePrepare,   // MigratePrepare: stop the rings on the source
  kMigrateAbort,     // MigrateAbort: the rings run again on the source
  kMigrateCommit,    // MigrateCommit: go to the destination
  kSessionLost,      // the control session ended (EOF, error, Bye)
  kResumed,          // a new session serves the rings at their indices
  kResumeFailed,     // nothing answered in time: the rings are kept
};

struct PathSwitchTraits {
  using State = PathState;
  using Event = PathEvent;
  static constexpr const char* kName = "path switch";
  static constexpr size_t kNumStates = 12, kNumEvents = 19;
  static const char* StateName(PathState s);
  static const char* EventName(PathEvent e);

  using S = PathState;
  using E = PathEvent;
  static constexpr Arc<PathState, PathEvent> kArcs[] = {
      {S::kEmulated, E::kOffer, S::kAttaching},
      {S::kAttaching, E::kStartOk, S::kEntering},
      {S::kAttaching, E::kStartFailed, S::kEmulated},
      {S::kAttaching, E::kAbandon, S::kReleasing},
      // Nothing is torn down after start: an owner that does not burst
      // costs only the measurement.
      {S::kEntering, E::kAcked, S::kOnVf},
      {S::kEntering, E::kAckTimedOut, S::kOnVf},
      {S::kEntering, E::kAbandon, S::kReturning},
      // Planned or not, leaving takes the same bounded steps.
      {S::kOnVf, E::kRevoke, S::kLeaving},
      {S::kOnVf, E::kDeviceReq, S::kLeaving},
      {S::kOnVf, E::kDeviceErr, S::kLeaving},
      {S::kOnVf, E::kShellStop, S::kLeaving},
      {S::kLeaving, E::kAcked, S::kQuiescing},
      {S::kLeaving, E::kAckTimedOut, S::kQuiescing},
      {S::kLeaving, E::kAbandon, S::kReturning},
      // A plug-in still busy at the bound is drained and stopped anyway:
      // stop hands back what it holds (counted as lost, tx_tracker.h).
      {S::kQuiescing, E::kQuiesceDone, S::kDraining},
      {S::kQuiescing, E::kQuiesceTimedOut, S::kDraining},
      {S::kQuiescing, E::kAbandon, S::kReturning},
      {S::kDraining, E::kAcked, S::kReturning},
      {S::kDraining, E::kAckTimedOut, S::kReturning},
      {S::kDraining, E::kAbandon, S::kReturning},
      {S::kReturning, E::kAcked, S::kReleasing},
      {S::kReturning, E::kAckTimedOut, S::kReleasing},
      {S::kReturning, E::kAbandon, S::kReleasing},
      {S::kReleasing, E::kReleased, S::kEmulated},
      {S::kReleasing, E::kAbandon, S::kEmulated},
      // Migration (docs/migration.md): only from the emulated path (the
      // agent revokes a VF first); an offer or revoke meanwhile is refused.
      {S::kEmulated, E::kMigratePrepare, S::kMigrateStopped},
      {S::kMigrateStopped, E::kMigrateAbort, S::kEmulated},
      {S::kMigrateStopped, E::kMigrateCommit, S::kReconnecting},
      {S::kMigrateStopped, E::kSessionLost, S::kReconnecting},
      // Agent restart: the emulated rings resume on the new agent; a VF
      // keeps forwarding meanwhile.
      {S::kEmulated, E::kSessionLost, S::kReconnecting},
      {S::kOnVf, E::kSessionLost, S::kOnVf},
      {S::kReconnecting, E::kResumed, S::kEmulated},
      {S::kReconnecting, E::kResumeFailed, S::kDetached},
      // Detached, the shell keeps trying (slowly) until it is closed.
      {S::kDetached, E::kSessionLost, S::kReconnecting},
  };
};

using PathSwitchTable = TransitionTable<PathSwitchTraits>;

// The machine and the acknowledgements its current state waits for.
class PathSwitch {
 public:
  // Queues one switch can track: every queue a shell may have.
  static constexpr uint16_t kMaxQueues = NPA_SHELL_MAX_QUEUES;

  PathState state() const { return m_.state(); }
  const char* state_name() const { return m_.name(); }
  bool CanFire(PathEvent e) const { return m_.CanFire(e); }
  // OK if e is legal now, else the table's FailedPrecondition; moves nothing.
  absl::Status Check(PathEvent e) const;
  // Moves along the table; any acknowledgements still expected are dropped
  // with the state they belonged to.
  [[nodiscard]] absl::Status Fire(PathEvent e);

  // States with no step of their own: the machine waits for an outside
  // event there (EMULATED, ON_VF, MIGRATE_STOPPED, DETACHED). RECONNECTING's
  // step is shell/reconnect.cc's, not vf_switch.cc's Drive.
  static constexpr bool Rests(PathState s) {
    return s == PathState::kEmulated || s == PathState::kOnVf ||
           s == PathState::kMigrateStopped || s == PathState::kDetached;
  }
  // States whose step ends with every queue's acknowledgement.
  static constexpr bool WaitsForAcks(PathState s) {
    return PathSwitchTable::Legal(s, PathEvent::kAcked);
  }

  // Acknowledgements, in a state that waits for them: after staging ops on
  // queues 0..queues-1, ExpectAcks; then Ack(q) for each queue seen to
  // acknowledge (the one that completes the set fires kAcked) and Tick(now)
  // (fires kAckTimedOut once now >= deadline_ns with acks outstanding).
  // ExpectAcks(0, ..) fires kAcked at once. Errors: FailedPrecondition when
  // the state waits for none or none are expected; InvalidArgument for a
  // queue out of range. Acking a queue twice is harmless.
  [[nodiscard]] absl::Status ExpectAcks(uint16_t queues, uint64_t deadline_ns);
  [[nodiscard]] absl::Status Ack(uint16_t q);
  [[nodiscard]] absl::Status Tick(uint64_t now_ns);
  // Whether acknowledgements are expected; whether q's is still outstanding.
  bool awaiting() const { return expecting_; }
  bool pending(uint16_t q) const { return q < kMaxQueues && waiting_.test(q); }

 private:
  absl::Status NoAcksExpected() const;

  StateMachine<PathSwitchTraits> m_{PathState::kEmulated};
  std::bitset<kMaxQueues> waiting_;  // queues whose ack is outstanding
  uint16_t queues_ = 0;              // how many ExpectAcks was given
  uint64_t deadline_ns_ = 0;
  bool expecting_ = false;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_PATH_SWITCH_H_
