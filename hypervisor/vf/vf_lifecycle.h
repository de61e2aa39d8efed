// hypervisor/vf/vf_lifecycle.h — one pooled VF's lifecycle as a table of legal
// transitions (docs/architecture.md "Lifecycles", in the manner of VFIO migration v2's
// device-state arcs).
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
//
// Every edge is in kVfTransitions; anything else is an error naming both
// states. VfShortestPath gives the legal route (BFS over the same table): the
// attach sequence is VfShortestPath(FREE, OFFERED).
#ifndef NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_
#define NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

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
};
inline constexpr size_t kNumVfStates = 9;

const char* VfStateName(VfState s);

struct VfTransition {
  VfState from;
  VfState to;
};

inline constexpr VfTransition kVfTransitions[] = {
    {VfState::kFree, VfState::kBinding},       // attach, or reset of a free VF
    {VfState::kBinding, VfState::kBound},
    {VfState::kBinding, VfState::kFree},       // bind failed, rolled back
    {VfState::kBinding, VfState::kFailed},     // bind failed, rollback failed
    {VfState::kBound, VfState::kMapped},
    {VfState::kBound, VfState::kResetting},    // map failed / reset of a free VF
    {VfState::kMapped, VfState::kOffered},
    {VfState::kMapped, VfState::kResetting},   // sending the offer failed
    {VfState::kOffered, VfState::kActive},     // VfAccept{accepted=true}
    {VfState::kOffered, VfState::kResetting},  // declined, timed out, guest gone
    {VfState::kActive, VfState::kRevoking},    // planned detach
    {VfState::kActive, VfState::kResetting},   // forced detach, guest gone, device error
    {VfState::kRevoking, VfState::kResetting}, // RevokeDone, or its timeout
    {VfState::kResetting, VfState::kFree},
    {VfState::kResetting, VfState::kFailed},
    {VfState::kFailed, VfState::kResetting},   // operator retry (npactl vf reset)
};

bool IsLegalVfTransition(VfState from, VfState to);

// States visited from `from` (exclusive) to `to` (inclusive), shortest first;
// empty if equal; kFailedPrecondition if unreachable.
absl::Status VfShortestPath(VfState from, VfState to, std::vector<VfState>* path);

class VfLifecycle {
 public:
  VfState state() const { return state_; }
  const char* name() const { return VfStateName(state_); }
  // kFailedPrecondition naming both states if the edge is not in the table;
  // the state is unchanged then.
  absl::Status Transition(VfState to);
  // True while a guest holds (or is being given) the VF.
  bool held() const {
    return state_ == VfState::kOffered || state_ == VfState::kActive ||
           state_ == VfState::kRevoking;
  }

 private:
  VfState state_ = VfState::kFree;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VF_VF_LIFECYCLE_H_
