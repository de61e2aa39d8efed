#include "hypervisor/vf/vf_lifecycle.h"

#include <gtest/gtest.h>

namespace npa::agent {
namespace {

TEST(VfLifecycle, AttachPathIsDataAndWalksTheTable) {
  std::vector<VfState> p;
  ASSERT_TRUE(VfShortestPath(VfState::kFree, VfState::kOffered, &p).ok());
  EXPECT_EQ(p, (std::vector<VfState>{VfState::kBinding, VfState::kBound, VfState::kMapped,
                                     VfState::kOffered}));
  VfLifecycle lc;
  for (VfState s : p) ASSERT_TRUE(lc.Transition(s).ok()) << VfStateName(s);
  EXPECT_TRUE(lc.held());
}

TEST(VfLifecycle, PlannedRevokeReturnsToFree) {
  std::vector<VfState> p;
  ASSERT_TRUE(VfShortestPath(VfState::kRevoking, VfState::kFree, &p).ok());
  EXPECT_EQ(p, (std::vector<VfState>{VfState::kResetting, VfState::kFree}));
  ASSERT_TRUE(VfShortestPath(VfState::kActive, VfState::kFree, &p).ok());
  EXPECT_EQ(p.size(), 2u) << "forced detach skips REVOKING";
}

TEST(VfLifecycle, IllegalTransitionNamesBothStatesAndKeepsState) {
  VfLifecycle lc;
  absl::Status s = lc.Transition(VfState::kActive);
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_NE(s.message().find("FREE -> ACTIVE"), absl::string_view::npos) << s;
  EXPECT_EQ(lc.state(), VfState::kFree);
}

TEST(VfLifecycle, FailedIsOnlyLeftThroughResetting) {
  for (size_t t = 0; t < kNumVfStates; t++) {
    VfState to = static_cast<VfState>(t);
    EXPECT_EQ(IsLegalVfTransition(VfState::kFailed, to), to == VfState::kResetting) << VfStateName(to);
  }
}

TEST(VfLifecycle, EveryStateCanReachFreeAndHasAName) {
  for (size_t f = 0; f < kNumVfStates; f++) {
    std::vector<VfState> p;
    EXPECT_TRUE(VfShortestPath(static_cast<VfState>(f), VfState::kFree, &p).ok());
    EXPECT_STRNE(VfStateName(static_cast<VfState>(f)), "UNKNOWN");
  }
}

TEST(VfLifecycle, NoSelfLoopsAndNoDuplicateEdges) {
  for (const auto& t : kVfTransitions) EXPECT_NE(t.from, t.to);
  for (size_t i = 0; i < std::size(kVfTransitions); i++)
    for (size_t j = i + 1; j < std::size(kVfTransitions); j++)
      EXPECT_FALSE(kVfTransitions[i].from == kVfTransitions[j].from &&
                   kVfTransitions[i].to == kVfTransitions[j].to);
}

}  // namespace
}  // namespace npa::agent
