#include "hypervisor/daemon/guest_lifecycle.h"

#include "absl/strings/str_cat.h"

namespace npa::agent {

const char* GuestStateName(GuestState s) {
  switch (s) {
    case GuestState::kConnected: return "CONNECTED";
    case GuestState::kNegotiating: return "NEGOTIATING";
    case GuestState::kReady: return "READY";
    case GuestState::kRunning: return "RUNNING";
    case GuestState::kClosing: return "CLOSING";
    case GuestState::kClosed: return "CLOSED";
    case GuestState::kBroken: return "BROKEN";
    case GuestState::kVfOffered: return "VF_OFFERED";
    case GuestState::kVfActive: return "VF_ACTIVE";
    case GuestState::kRevoking: return "REVOKING";
    case GuestState::kStopping: return "STOPPING";
    case GuestState::kStopCopy: return "STOP_COPY";
    case GuestState::kCommitted: return "COMMITTED";
    case GuestState::kResuming: return "RESUMING";
  }
  return "UNKNOWN";
}

std::string StatesLeadingTo(GuestState to) {
  std::string out;
  for (size_t f = 0; f < kNumGuestStates; f++) {
    const GuestState from = static_cast<GuestState>(f);
    if (!IsLegalTransition(from, to)) continue;
    absl::StrAppend(&out, out.empty() ? "" : " or ", GuestStateName(from));
  }
  return out.empty() ? "a state the lifecycle does not have" : out;
}

}  // namespace npa::agent
