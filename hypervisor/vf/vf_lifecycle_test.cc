#include "hypervisor/vf/vf_lifecycle.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

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

// A VF a guest held across an agent restart (ADOPTED): the agent holds no
// fd for it, so it is never handed out nor reset in place; it leaves only by
// a planned revoke or once nobody holds it (RESETTING opens it afresh).
TEST(VfLifecycle, AdoptedIsEnteredFromFreeOnlyAndNeverAttachable) {
  for (size_t f = 0; f < kNumVfStates; f++) {
    const VfState from = static_cast<VfState>(f);
    EXPECT_EQ(IsLegalVfTransition(from, VfState::kAdopted),
              from == VfState::kFree || from == VfState::kRevoking)
        << VfStateName(from);
  }
  for (size_t t = 0; t < kNumVfStates; t++) {
    const VfState to = static_cast<VfState>(t);
    EXPECT_EQ(IsLegalVfTransition(VfState::kAdopted, to),
              to == VfState::kRevoking || to == VfState::kResetting)
        << VfStateName(to);
  }
  VfLifecycle lc;
  ASSERT_TRUE(lc.Transition(VfState::kAdopted).ok());
  EXPECT_TRUE(lc.held());
  EXPECT_FALSE(lc.CanFire(VfState::kBinding)) << "an ADOPTED VF is never attached";
  absl::Status s = lc.Transition(VfState::kActive);
  EXPECT_EQ(s.message(), "VF lifecycle: illegal transition ADOPTED -> ACTIVE");
  EXPECT_EQ(lc.state(), VfState::kAdopted);
  // Planned revoke that found the group still busy: back to ADOPTED; then
  // the group opens: reset and FREE.
  ASSERT_TRUE(lc.Transition(VfState::kRevoking).ok());
  ASSERT_TRUE(lc.Transition(VfState::kAdopted).ok());
  std::vector<VfState> p;
  ASSERT_TRUE(VfShortestPath(VfState::kAdopted, VfState::kFree, &p).ok());
  EXPECT_EQ(p, (std::vector<VfState>{VfState::kResetting, VfState::kFree}));
}

TEST(VfLifecycle, NoSelfLoopsAndNoDuplicateEdges) {
  for (const auto& t : kVfTransitions) EXPECT_NE(t.from, t.to);
  for (size_t i = 0; i < std::size(kVfTransitions); i++)
    for (size_t j = i + 1; j < std::size(kVfTransitions); j++)
      EXPECT_FALSE(kVfTransitions[i].from == kVfTransitions[j].from &&
                   kVfTransitions[i].to == kVfTransitions[j].to);
}

// Every (from, to) pair: a machine in `from` moves to `to` exactly when the
// table lists the edge, and otherwise refuses naming both states, unmoved.
TEST(VfLifecycle, EveryPairIsEitherAnEdgeOrAnErrorNamingBothStates) {
  std::set<std::pair<VfState, VfState>> edges;
  for (const auto& t : kVfTransitions) edges.insert({t.from, t.to});
  size_t legal = 0;
  for (size_t f = 0; f < kNumVfStates; f++)
    for (size_t t = 0; t < kNumVfStates; t++) {
      const VfState from = static_cast<VfState>(f), to = static_cast<VfState>(t);
      std::vector<VfState> p;
      ASSERT_TRUE(VfShortestPath(VfState::kFree, from, &p).ok()) << VfStateName(from);
      VfLifecycle lc;
      for (VfState s : p) ASSERT_TRUE(lc.Transition(s).ok());
      ASSERT_EQ(lc.state(), from);
      const bool in_table = edges.count({from, to}) > 0;
      EXPECT_EQ(IsLegalVfTransition(from, to), in_table);
      absl::Status s = lc.Transition(to);
      EXPECT_EQ(s.ok(), in_table) << VfStateName(from) << " -> " << VfStateName(to);
      if (in_table) {
        EXPECT_EQ(lc.state(), to);
        legal++;
      } else {
        EXPECT_EQ(s.message(), absl::StrCat("VF lifecycle: illegal transition ", VfStateName(from),
                                            " -> ", VfStateName(to)));
        EXPECT_EQ(lc.state(), from);
      }
    }
  EXPECT_EQ(legal, std::size(kVfTransitions));
}

}  // namespace
}  // namespace npa::agent
