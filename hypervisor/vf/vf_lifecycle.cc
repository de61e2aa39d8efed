#include "hypervisor/vf/vf_lifecycle.h"

#include <array>
#include <deque>

#include "absl/strings/str_cat.h"

namespace npa::agent {
namespace {

using Matrix = std::array<std::array<bool, kNumVfStates>, kNumVfStates>;

constexpr Matrix BuildMatrix() {
  Matrix m{};
  for (const auto& t : kVfTransitions) m[static_cast<size_t>(t.from)][static_cast<size_t>(t.to)] = true;
  return m;
}
constexpr Matrix kLegal = BuildMatrix();

}  // namespace

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
  }
  return "UNKNOWN";
}

bool IsLegalVfTransition(VfState from, VfState to) {
  size_t f = static_cast<size_t>(from), t = static_cast<size_t>(to);
  return f < kNumVfStates && t < kNumVfStates && kLegal[f][t];
}

absl::Status VfShortestPath(VfState from, VfState to, std::vector<VfState>* path) {
  path->clear();
  if (from == to) return absl::OkStatus();
  std::array<int, kNumVfStates> prev;
  prev.fill(-1);
  const size_t src = static_cast<size_t>(from), dst = static_cast<size_t>(to);
  if (src >= kNumVfStates || dst >= kNumVfStates)
    return absl::InvalidArgumentError("VF lifecycle: state out of range");
  std::deque<size_t> q{src};
  prev[src] = static_cast<int>(src);
  while (!q.empty()) {
    size_t s = q.front();
    q.pop_front();
    if (s == dst) break;
    for (size_t n = 0; n < kNumVfStates; n++)
      if (kLegal[s][n] && prev[n] < 0) {
        prev[n] = static_cast<int>(s);
        q.push_back(n);
      }
  }
  if (prev[dst] < 0)
    return absl::FailedPreconditionError(
        absl::StrCat("VF lifecycle: no path from ", VfStateName(from), " to ", VfStateName(to)));
  for (size_t s = dst; s != src; s = static_cast<size_t>(prev[s]))
    path->insert(path->begin(), static_cast<VfState>(s));
  return absl::OkStatus();
}

absl::Status VfLifecycle::Transition(VfState to) {
  if (!IsLegalVfTransition(state_, to))
    return absl::FailedPreconditionError(absl::StrCat(
        "VF lifecycle: illegal transition ", VfStateName(state_), " -> ", VfStateName(to)));
  state_ = to;
  return absl::OkStatus();
}

}  // namespace npa::agent
