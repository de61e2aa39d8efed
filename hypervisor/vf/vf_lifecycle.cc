#include "hypervisor/vf/vf_lifecycle.h"

namespace npa::agent {

const char* VfStateName(VfState s) {
  switch (s) {
    case VfState::kFree: return "FREE";
    case VfState::kBinding: return "BINDING";
    case VfState::kBound: return "BOUND";
    case VfState::kMapped: return "MAPPED";
    case VfState::kOffered: return "OFFERED";
    case VfState::kActive: return "ACTIVE";
    case VfState::kRevoking: return "REVOKING";
    case VfState::kResetting: return "RESETTING";
    case VfState::kFailed: return "FAILED";
    case VfState::kAdopted: return "ADOPTED";
  }
  return "UNKNOWN";
}

}  // namespace npa::agent
