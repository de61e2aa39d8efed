#include "hypervisor/daemon/guest_lifecycle.h"

#include <array>
#include <deque>

#include "absl/strings/str_cat.h"

namespace npa::agent {
namespace {

using Matrix = std::array<std::array<bool, kNumGuestStates>, kNumGuestStates>;

constexpr Matrix BuildMatrix() {
  Matrix m{};
  for (const auto& t : kGuestTransitions)
    m[static_cast<size_t>(t.from)][static_cast<size_t>(t.to)] = true;
  return m;
}

constexpr Matrix kLegal = BuildMatrix();

}  // namespace

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
  }
  return "UNKNOWN";
}

bool IsLegalTransition(GuestState from, GuestState to) {
  size_t f = static_cast<size_t>(from), t = static_cast<size_t>(to);
  return f < kNumGuestStates && t < kNumGuestStates && kLegal[f][t];
}

absl::Status ShortestPath(GuestState from, GuestState to, std::vector<GuestState>* path) {
  path->clear();
  if (from == to) return absl::OkStatus();
  std::array<int, kNumGuestStates> prev;
  prev.fill(-1);
  std::deque<size_t> q{static_cast<size_t>(from)};
  prev[static_cast<size_t>(from)] = static_cast<int>(from);
  while (!q.empty()) {
    size_t s = q.front();
    q.pop_front();
    if (s == static_cast<size_t>(to)) break;
    for (size_t n = 0; n < kNumGuestStates; n++) {
      if (kLegal[s][n] && prev[n] < 0) {
        prev[n] = static_cast<int>(s);
        q.push_back(n);
      }
    }
  }
  if (prev[static_cast<size_t>(to)] < 0)
    return absl::FailedPreconditionError(absl::StrCat("guest lifecycle: no path from ",
                                                      GuestStateName(from), " to ",
                                                      GuestStateName(to)));
  for (size_t s = static_cast<size_t>(to); s != static_cast<size_t>(from);
       s = static_cast<size_t>(prev[s]))
    path->insert(path->begin(), static_cast<GuestState>(s));
  return absl::OkStatus();
}

absl::Status GuestLifecycle::Transition(GuestState to) {
  if (!IsLegalTransition(state_, to))
    return absl::FailedPreconditionError(absl::StrCat("guest lifecycle: illegal transition ",
                                                      GuestStateName(state_), " -> ",
                                                      GuestStateName(to)));
  state_ = to;
  return absl::OkStatus();
}

}  // namespace npa::agent
