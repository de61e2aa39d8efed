// hypervisor/vf/vf_lifecycle.h — one pooled VF's lifecycle as a table of legal
// transitions (docs/architecture.md "Lifecycles", in the manner of VFIO migration v2's
// device-state arcs), on the one transition-table template (common/state_machine.h).
//
//   VfLifecycle lc;                                   // FREE
//   NPA_RETURN_IF_ERROR(lc.Transition(VfState::kBinding));
//   absl::Status s = lc.Transition(VfState::kActive);
//   // s = FailedPrecondition("VF lifecycle: illegal transition BINDING -> ACTIVE")
//
// States (what the agent holds for the function in each):
//   FREE       in the pool, nobody's. Bound to vfio-pci or to its original
//              driver; no container, no group, no device fd.
//   BINDING    moving it to vfio-pci (driver_override, reset_method).
//   BOUND      on vfio-pci; container + group + device fd open.
//   MAPPED     the guest's announced regions are DMA-mapped at their IOVAs and
//              the device was reset (clean state for the new owner).
//   OFFERED    VfOffer + a dup of the device fd sent; waiting for VfAccept.
//   ACTIVE     the guest accepted and drives it.
//   REVOKING   Revoke sent; waiting for RevokeDone (bounded).
//   RESETTING  VFIO_DEVICE_RESET, unmap, close; then back to FREE. A forced
//              detach also unbinds from vfio-pci here, which the kernel turns
//              into a VFIO REQ interrupt for a guest still holding the fd.
//   FAILED     a step the agent could not undo failed (reset, unmap, unbind).
//              Not attachable; `npactl vf reset` retries the teardown.
//   ADOPTED    held by a guest from before the agent restarted (the restart
//              roster named it, guest_registry.h): the guest's shell still
//              holds the device fd and drives the VF, whose DMA mappings live
//              on in the dead agent's container (the device fd keeps its
//              group, and so the container, alive). The agent has NO
//              container, group or device fd: it never opens the group nor
//              resets the device while the guest may hold the fd. Never
//              offered, never reset by `npactl vf reset`. Left for RESETTING
//              only once the group opens again (the fd was closed: a group
//              node opens once, EBUSY while a device fd of it is open), or
//              for REVOKING (planned detach of the returned guest).
//
// Every edge is in kVfTransitions (VfLifecycleTraits::kArcs, npa::Edge arcs:
// the event of each arc is its target state); anything else is an error
// naming both states, and the state is unchanged. VfShortestPath gives the
// legal route over the same table (TransitionTable::ShortestPath): the attach
// sequence is VfShortestPath(FREE, OFFERED).
//
// Threads: none of its own; the VfManager's owner (the control thread)
// serializes every call. Errors: kFailedPrecondition for an illegal
// transition or an unreachable target, kInvalidArgument for a state out of
// range.
#ifndef NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_
#define NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/state_machine.h"

namespace npa::agent {

enum class VfState : uint8_t {
  kFree,
  kBinding,
  kBound,
  kMapped,
  kOffered,
  kActive,
  kRevoking,
  kResetting,
  kFailed,
  kAdopted,
};
inline constexpr size_t kNumVfStates = 10;

const char* VfStateName(VfState s);

struct VfLifecycleTraits {
  using State = VfState;
  using Event = VfState;  // "go to state X"
  static constexpr const char* kName = "VF lifecycle";
  static constexpr size_t kNumStates = kNumVfStates, kNumEvents = kNumVfStates;
  static const char* StateName(VfState s) { return VfStateName(s); }
  static const char* EventName(VfState s) { return VfStateName(s); }

  using S = VfState;
  static constexpr Arc<VfState, VfState> kArcs[] = {
      Edge(S::kFree, S::kBinding),        // attach, or reset of a free VF
      Edge(S::kBinding, S::kBound),
      Edge(S::kBinding, S::kFree),        // bind failed, rolled back
      Edge(S::kBinding, S::kFailed),      // bind failed, rollback failed
      Edge(S::kBound, S::kMapped),
      Edge(S::kBound, S::kResetting),     // map failed / reset of a free VF
      Edge(S::kMapped, S::kOffered),
      Edge(S::kMapped, S::kResetting),    // sending the offer failed
      Edge(S::kOffered, S::kActive),      // VfAccept{accepted=true}
      Edge(S::kOffered, S::kResetting),   // declined, timed out, guest gone
      Edge(S::kActive, S::kRevoking),     // planned detach
      Edge(S::kActive, S::kResetting),    // forced detach, guest gone, device error
      Edge(S::kRevoking, S::kResetting),  // RevokeDone, or its timeout
      Edge(S::kResetting, S::kFree),
      Edge(S::kResetting, S::kFailed),
      Edge(S::kFailed, S::kResetting),    // operator retry (npactl vf reset)
      Edge(S::kFree, S::kAdopted),        // restart roster: a guest still holds it
      Edge(S::kAdopted, S::kRevoking),    // planned detach of the returned guest
      Edge(S::kAdopted, S::kResetting),   // the group opened again: nobody holds it
      Edge(S::kRevoking, S::kAdopted),    // revoke of an ADOPTED VF ended, group still busy
  };
};

using VfTransitionTable = TransitionTable<VfLifecycleTraits>;

// The whole lifecycle, as data (each arc's from/to; event == to).
inline constexpr const auto& kVfTransitions = VfLifecycleTraits::kArcs;

inline bool IsLegalVfTransition(VfState from, VfState to) {
  return VfTransitionTable::Legal(from, to);
}

// States visited from `from` (exclusive) to `to` (inclusive), shortest first;
// empty if equal; kFailedPrecondition if unreachable.
inline absl::Status VfShortestPath(VfState from, VfState to, std::vector<VfState>* path) {
  return VfTransitionTable::ShortestPath(from, to, path);
}

class VfLifecycle : public StateMachine<VfLifecycleTraits> {
 public:
  VfLifecycle() : StateMachine(VfState::kFree) {}
  // True while a guest holds (or is being given) the VF.
  bool held() const {
    return state() == VfState::kOffered || state() == VfState::kActive ||
           state() == VfState::kRevoking || state() == VfState::kAdopted;
  }
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_
