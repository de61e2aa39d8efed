// hypervisor/daemon/guest_lifecycle.h — the guest attachment lifecycle as a table of
// legal transitions (docs/architecture.md "Lifecycles", in the manner of VFIO migration v2).
//
//   GuestLifecycle lc;                                  // CONNECTED
//   NPA_RETURN_IF_ERROR(lc.Transition(GuestState::kNegotiating));
//   ...
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
//                the VF path (control_server_vf.cc): a VF was offered, the
//                guest runs on it, it is being revoked back to the emulated
//                path. They move with the VF's own table (vf_lifecycle.h).
//
// Every edge is listed in kGuestTransitions; anything else is an error naming
// both states. ShortestPath gives the legal route between two states (BFS over
// the same table), e.g. for tearing down from any state.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

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
};
inline constexpr size_t kNumGuestStates = 10;

const char* GuestStateName(GuestState s);

struct GuestTransition {
  GuestState from;
  GuestState to;
};

// The whole lifecycle, as data.
inline constexpr GuestTransition kGuestTransitions[] = {
    {GuestState::kConnected, GuestState::kNegotiating},
    {GuestState::kConnected, GuestState::kClosing},
    {GuestState::kConnected, GuestState::kBroken},
    {GuestState::kNegotiating, GuestState::kReady},
    {GuestState::kNegotiating, GuestState::kClosing},
    {GuestState::kNegotiating, GuestState::kBroken},
    {GuestState::kReady, GuestState::kRunning},
    {GuestState::kReady, GuestState::kNegotiating},  // front end reconfigures
    {GuestState::kReady, GuestState::kClosing},
    {GuestState::kReady, GuestState::kBroken},
    {GuestState::kRunning, GuestState::kNegotiating},  // queues stopped / reset
    {GuestState::kRunning, GuestState::kVfOffered},
    {GuestState::kRunning, GuestState::kClosing},
    {GuestState::kRunning, GuestState::kBroken},
    {GuestState::kVfOffered, GuestState::kVfActive},   // guest accepted
    {GuestState::kVfOffered, GuestState::kRunning},    // guest declined
    {GuestState::kVfOffered, GuestState::kClosing},
    {GuestState::kVfOffered, GuestState::kBroken},
    {GuestState::kVfActive, GuestState::kRevoking},
    {GuestState::kVfActive, GuestState::kClosing},
    {GuestState::kVfActive, GuestState::kBroken},
    {GuestState::kRevoking, GuestState::kRunning},     // RevokeDone
    {GuestState::kRevoking, GuestState::kClosing},
    {GuestState::kRevoking, GuestState::kBroken},
    {GuestState::kBroken, GuestState::kClosing},
    {GuestState::kClosing, GuestState::kClosed},
};

bool IsLegalTransition(GuestState from, GuestState to);

// The states visited from `from` (exclusive) to `to` (inclusive) along legal
// edges, shortest first; empty if from == to; kFailedPrecondition if `to`
// cannot be reached.
absl::Status ShortestPath(GuestState from, GuestState to, std::vector<GuestState>* path);

class GuestLifecycle {
 public:
  GuestLifecycle() = default;
  GuestState state() const { return state_; }
  const char* name() const { return GuestStateName(state_); }
  // kFailedPrecondition naming both states when the edge is not in the table;
  // the state is unchanged then.
  absl::Status Transition(GuestState to);

 private:
  GuestState state_ = GuestState::kConnected;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_LIFECYCLE_H_
