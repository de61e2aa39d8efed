#include "hypervisor/daemon/guest_lifecycle.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"

namespace npa::agent {
namespace {

TEST(GuestLifecycleTest, HappyPathToClosed) {
  GuestLifecycle lc;
  EXPECT_EQ(lc.state(), GuestState::kConnected);
  for (GuestState s : {GuestState::kNegotiating, GuestState::kReady, GuestState::kRunning,
                       GuestState::kClosing, GuestState::kClosed}) {
    ASSERT_TRUE(lc.Transition(s).ok()) << GuestStateName(s);
  }
  EXPECT_STREQ(lc.name(), "CLOSED");
}

TEST(GuestLifecycleTest, IllegalTransitionNamesBothStatesAndKeepsState) {
  GuestLifecycle lc;
  ASSERT_TRUE(lc.Transition(GuestState::kNegotiating).ok());
  absl::Status s = lc.Transition(GuestState::kRunning);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("NEGOTIATING -> RUNNING"), std::string::npos) << s;
  EXPECT_EQ(lc.state(), GuestState::kNegotiating);
}

TEST(GuestLifecycleTest, ClosedIsTerminal) {
  for (size_t i = 0; i < kNumGuestStates; i++)
    EXPECT_FALSE(IsLegalTransition(GuestState::kClosed, static_cast<GuestState>(i)));
}

TEST(GuestLifecycleTest, BrokenOnlyTearsDown) {
  for (size_t i = 0; i < kNumGuestStates; i++) {
    auto to = static_cast<GuestState>(i);
    EXPECT_EQ(IsLegalTransition(GuestState::kBroken, to), to == GuestState::kClosing)
        << GuestStateName(to);
  }
}

TEST(GuestLifecycleTest, EveryLiveStateCanBreakAndClose) {
  for (size_t i = 0; i < kNumGuestStates; i++) {
    auto s = static_cast<GuestState>(i);
    if (s == GuestState::kClosed || s == GuestState::kClosing || s == GuestState::kBroken)
      continue;
    EXPECT_TRUE(IsLegalTransition(s, GuestState::kBroken)) << GuestStateName(s);
    EXPECT_TRUE(IsLegalTransition(s, GuestState::kClosing)) << GuestStateName(s);
  }
}

TEST(GuestLifecycleTest, TableHasNoDuplicatesOrSelfLoops) {
  std::set<std::pair<int, int>> seen;
  for (const auto& t : kGuestTransitions) {
    EXPECT_NE(t.from, t.to);
    EXPECT_TRUE(seen.insert({static_cast<int>(t.from), static_cast<int>(t.to)}).second)
        << GuestStateName(t.from) << " -> " << GuestStateName(t.to);
  }
}

TEST(GuestLifecycleTest, ShortestPaths) {
  std::vector<GuestState> p;
  ASSERT_TRUE(ShortestPath(GuestState::kNegotiating, GuestState::kRunning, &p).ok());
  EXPECT_EQ(p, (std::vector<GuestState>{GuestState::kReady, GuestState::kRunning}));
  // A migration's destination: a reserved slot runs once its shell resumed.
  ASSERT_TRUE(ShortestPath(GuestState::kConnected, GuestState::kRunning, &p).ok());
  EXPECT_EQ(p, (std::vector<GuestState>{GuestState::kResuming, GuestState::kRunning}));
  ASSERT_TRUE(ShortestPath(GuestState::kVfActive, GuestState::kClosed, &p).ok());
  EXPECT_EQ(p, (std::vector<GuestState>{GuestState::kClosing, GuestState::kClosed}));
  ASSERT_TRUE(ShortestPath(GuestState::kVfActive, GuestState::kRunning, &p).ok());
  EXPECT_EQ(p, (std::vector<GuestState>{GuestState::kRevoking, GuestState::kRunning}));
  ASSERT_TRUE(ShortestPath(GuestState::kReady, GuestState::kReady, &p).ok());
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(ShortestPath(GuestState::kClosed, GuestState::kRunning, &p).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(GuestLifecycleTest, EveryStateReachesClosed) {
  std::vector<GuestState> p;
  for (size_t i = 0; i < kNumGuestStates; i++) {
    auto s = static_cast<GuestState>(i);
    if (s == GuestState::kClosed) continue;
    EXPECT_TRUE(ShortestPath(s, GuestState::kClosed, &p).ok()) << GuestStateName(s);
  }
}

// Every (from, to) pair: a machine in `from` moves to `to` exactly when the
// table lists the edge, and otherwise refuses naming both states, unmoved.
TEST(GuestLifecycleTest, EveryPairIsEitherAnEdgeOrAnErrorNamingBothStates) {
  std::set<std::pair<GuestState, GuestState>> edges;
  for (const auto& t : kGuestTransitions) edges.insert({t.from, t.to});
  size_t legal = 0;
  for (size_t f = 0; f < kNumGuestStates; f++)
    for (size_t t = 0; t < kNumGuestStates; t++) {
      const GuestState from = static_cast<GuestState>(f), to = static_cast<GuestState>(t);
      std::vector<GuestState> p;
      ASSERT_TRUE(ShortestPath(GuestState::kConnected, from, &p).ok()) << GuestStateName(from);
      GuestLifecycle lc;
      for (GuestState s : p) ASSERT_TRUE(lc.Transition(s).ok());
      ASSERT_EQ(lc.state(), from);
      const bool in_table = edges.count({from, to}) > 0;
      EXPECT_EQ(IsLegalTransition(from, to), in_table);
      EXPECT_EQ(lc.CanFire(to), in_table);
      absl::Status s = lc.Transition(to);
      EXPECT_EQ(s.ok(), in_table) << GuestStateName(from) << " -> " << GuestStateName(to);
      if (in_table) {
        EXPECT_EQ(lc.state(), to);
        legal++;
      } else {
        EXPECT_EQ(s.message(), absl::StrCat("guest lifecycle: illegal transition ",
                                            GuestStateName(from), " -> ", GuestStateName(to)));
        EXPECT_EQ(lc.state(), from);
      }
    }
  EXPECT_EQ(legal, std::size(kGuestTransitions));
}

// The migration arcs (docs/migration.md): source RUNNING -> STOPPING ->
// STOP_COPY -> COMMITTED, every failure before COMMITTED back to RUNNING;
// the destination's reserved slot CONNECTED -> RESUMING -> RUNNING.
TEST(GuestLifecycleTest, MigrationArcs) {
  using S = GuestState;
  GuestLifecycle lc;
  for (S s : {S::kNegotiating, S::kReady, S::kRunning, S::kStopping, S::kStopCopy, S::kCommitted,
              S::kResuming, S::kRunning})
    ASSERT_TRUE(lc.Transition(s).ok()) << GuestStateName(s);
  for (S before : {S::kStopping, S::kStopCopy}) EXPECT_TRUE(IsLegalTransition(before, S::kRunning));
  EXPECT_FALSE(IsLegalTransition(S::kCommitted, S::kRunning));  // only through RESUMING
  EXPECT_FALSE(IsLegalTransition(S::kVfActive, S::kStopping));   // the VF is revoked first
  EXPECT_FALSE(IsLegalTransition(S::kStopping, S::kCommitted));  // the state goes first
  EXPECT_FALSE(IsLegalTransition(S::kStopping, S::kNegotiating));  // stopped rings are not a reset
  EXPECT_EQ(StatesLeadingTo(S::kStopping), "RUNNING");
  EXPECT_EQ(StatesLeadingTo(S::kResuming), "CONNECTED or COMMITTED");
  GuestLifecycle b;
  ASSERT_TRUE(b.Transition(S::kResuming).ok());
  EXPECT_EQ(b.Transition(S::kStopping).message(),
            "guest lifecycle: illegal transition RESUMING -> STOPPING");
}

TEST(GuestLifecycleTest, StatesLeadingToReadTheTable) {
  EXPECT_EQ(StatesLeadingTo(GuestState::kVfOffered), "RUNNING");
  EXPECT_EQ(StatesLeadingTo(GuestState::kVfActive), "VF_OFFERED");
  EXPECT_EQ(StatesLeadingTo(GuestState::kRevoking), "VF_ACTIVE");
  EXPECT_EQ(StatesLeadingTo(GuestState::kClosed), "CLOSING");
  EXPECT_EQ(StatesLeadingTo(GuestState::kConnected), "a state the lifecycle does not have");
}

}  // namespace
}  // namespace npa::agent
