// hypervisor/daemon/guest_lifecycle.h — the guest attachment lifecycle as a
// table of legal transitions (docs/architecture.md "Lifecycles", in the manner
// of VFIO migration v2), on the one transition-table template
// (common/state_machine.h). The control server asks this table whether a
// step is legal before it takes it (CanFire), and moves only through it
// (Fire/Transition): the table is the one place that says what a guest in a
// given state may do.
//
//   GuestLifecycle lc;                                  // CONNECTED
//   NPA_RETURN_IF_ERROR(lc.Transition(GuestState::kNegotiating));
//   ...
//   if (!lc.CanFire(GuestState::kVfOffered))            // from NEGOTIATING:
//     return absl::FailedPreconditionError(absl::StrCat(
//         "guest g1 is ", lc.name(), ": attach needs ", StatesLeadingTo(GuestState::kVfOffered)));
//   absl::Status s = lc.Transition(GuestState::kRunning);  // from NEGOTIATING:
//   // s = FailedPrecondition("guest lifecycle: illegal transition NEGOTIATING -> RUNNING")
//
// States:
//   CONNECTED    a session exists (Hello accepted or vhost-user socket accepted)
//   NEGOTIATING  the vhost-user back end exists; the front end is setting it up
//   READY        every queue pair the guest asked for is ready
//   RUNNING      the dataplane polls the guest's queues
//   CLOSING      the session is being torn down (removed from the dataplane)
//   CLOSED       terminal
//   BROKEN       the device or session failed; only teardown is legal
//   VF_OFFERED, VF_ACTIVE, REVOKING
//                the VF path (vf_attachments.h): a VF was offered, the guest
//                runs on it, it is being revoked back to the emulated path.
//                They move with the VF's own table (vf_lifecycle.h).
//   STOPPING, STOP_COPY, COMMITTED
//                the source of a migration (migrations.h, docs/migration.md):
//                MigratePrepare sent (the shell stops its rings), the state
//                with the ring indices sent to the destination, MigrateCommit
//                sent (the shell moves; the slot is kept until the hold ends
//                so the shell can come back). Before COMMITTED every failure
//                goes back to RUNNING (MigrateAbort: the guest stays on this
//                agent). The ERROR arc is STOPPING/STOP_COPY -> BROKEN (the
//                shell did not answer MigratePrepare or broke the protocol);
//                its recovery is the close, after which the shell comes back
//                as after an agent restart (Hello.resume without a ticket).
//   RESUMING     the destination: a slot reserved for a ticket (the name and
//                MAC are taken), then bound to the shell that came with it;
//                RUNNING once every ring is ready. On the source, COMMITTED ->
//                RESUMING when the shell returns with the ticket.
//
// Every edge is listed in kGuestTransitions (npa::Edge arcs: the event of an
// arc is its target state); anything else is an error naming both states,
// with the state unchanged. ShortestPath gives the legal route between two
// states (TransitionTable::ShortestPath over the same table), e.g. for
// tearing down from any state.
//
// Threads: none of its own; the control thread owns every guest's machine.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/state_machine.h"

namespace npa::agent {

enum class GuestState : uint8_t {
  kConnected,
  kNegotiating,
  kReady,
  kRunning,
  kClosing,
  kClosed,
  kBroken,
  kVfOffered,
  kVfActive,
  kRevoking,
  kStopping,
  kStopCopy,
  kCommitted,
  kResuming,
};
inline constexpr size_t kNumGuestStates = 14;

const char* GuestStateName(GuestState s);

struct GuestLifecycleTraits {
  using State = GuestState;
  using Event = GuestState;  // "go to state X"
  static constexpr const char* kName = "guest lifecycle";
  static constexpr size_t kNumStates = kNumGuestStates, kNumEvents = kNumGuestStates;
  static const char* StateName(GuestState s) { return GuestStateName(s); }
  static const char* EventName(GuestState s) { return GuestStateName(s); }

  using S = GuestState;
  static constexpr Arc<GuestState, GuestState> kArcs[] = {
      Edge(S::kConnected, S::kNegotiating),
      Edge(S::kConnected, S::kClosing),
      Edge(S::kConnected, S::kBroken),
      Edge(S::kConnected, S::kResuming),  // destination: slot reserved for a ticket
      Edge(S::kNegotiating, S::kReady),
      Edge(S::kNegotiating, S::kClosing),
      Edge(S::kNegotiating, S::kBroken),
      Edge(S::kReady, S::kRunning),
      Edge(S::kReady, S::kNegotiating),  // front end reconfigures
      Edge(S::kReady, S::kClosing),
      Edge(S::kReady, S::kBroken),
      Edge(S::kRunning, S::kNegotiating),  // queues stopped / reset
      Edge(S::kRunning, S::kVfOffered),
      Edge(S::kRunning, S::kClosing),
      Edge(S::kRunning, S::kBroken),
      Edge(S::kRunning, S::kStopping),  // migrate: MigratePrepare sent
      Edge(S::kVfOffered, S::kVfActive),  // guest accepted
      Edge(S::kVfOffered, S::kRunning),   // guest declined, or the offer was withdrawn
      Edge(S::kVfOffered, S::kClosing),
      Edge(S::kVfOffered, S::kBroken),
      Edge(S::kVfActive, S::kRevoking),
      Edge(S::kVfActive, S::kClosing),
      Edge(S::kVfActive, S::kBroken),
      Edge(S::kRevoking, S::kRunning),  // RevokeDone
      Edge(S::kRevoking, S::kClosing),
      Edge(S::kRevoking, S::kBroken),
      Edge(S::kStopping, S::kStopCopy),  // MigrateReady: rings stopped, state sent
      Edge(S::kStopping, S::kRunning),   // abort: MigrateAbort, rings restarted on A
      Edge(S::kStopping, S::kClosing),
      Edge(S::kStopping, S::kBroken),    // ERROR: no MigrateReady / protocol broken
      Edge(S::kStopCopy, S::kCommitted),  // MigrationCommitted: MigrateCommit sent
      Edge(S::kStopCopy, S::kRunning),    // abort
      Edge(S::kStopCopy, S::kClosing),
      Edge(S::kStopCopy, S::kBroken),
      Edge(S::kCommitted, S::kResuming),  // the shell came back with the ticket
      Edge(S::kCommitted, S::kClosing),   // the destination took it, or the hold ended
      Edge(S::kCommitted, S::kBroken),
      Edge(S::kResuming, S::kRunning),    // every ring resumed
      Edge(S::kResuming, S::kClosing),    // hold expired, refused, or gone
      Edge(S::kResuming, S::kBroken),
      Edge(S::kBroken, S::kClosing),
      Edge(S::kClosing, S::kClosed),
  };
};

using GuestTransitionTable = TransitionTable<GuestLifecycleTraits>;

// The whole lifecycle, as data (each arc's from/to; event == to).
inline constexpr const auto& kGuestTransitions = GuestLifecycleTraits::kArcs;

inline bool IsLegalTransition(GuestState from, GuestState to) {
  return GuestTransitionTable::Legal(from, to);
}

// The states visited from `from` (exclusive) to `to` (inclusive) along legal
// edges, shortest first; empty if from == to; kFailedPrecondition if `to`
// cannot be reached.
inline absl::Status ShortestPath(GuestState from, GuestState to, std::vector<GuestState>* path) {
  return GuestTransitionTable::ShortestPath(from, to, path);
}

// The states with an edge to `to`, as the table lists them ("RUNNING",
// "VF_OFFERED or REVOKING"): what a refusal says the step needs.
std::string StatesLeadingTo(GuestState to);

class GuestLifecycle : public StateMachine<GuestLifecycleTraits> {
 public:
  GuestLifecycle() : StateMachine(GuestState::kConnected) {}
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_
