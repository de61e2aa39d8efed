#include "shell/vf/path_switch.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace npa::shell {
namespace {

using S = PathState;
using E = PathEvent;

constexpr size_t kStates = PathSwitchTraits::kNumStates;
constexpr size_t kEvents = PathSwitchTraits::kNumEvents;

// Every legal (state, event) pair and where it leads, written out here apart
// from kArcs: the table must say exactly this, and nothing else is legal.
const std::map<std::pair<S, E>, S>& Expected() {
  static const auto* m = new std::map<std::pair<S, E>, S>{
      {{S::kEmulated, E::kOffer}, S::kAttaching},
      {{S::kAttaching, E::kStartOk}, S::kEntering},
      {{S::kAttaching, E::kStartFailed}, S::kEmulated},
      {{S::kAttaching, E::kAbandon}, S::kReleasing},
      {{S::kEntering, E::kAcked}, S::kOnVf},
      {{S::kEntering, E::kAckTimedOut}, S::kOnVf},
      {{S::kEntering, E::kAbandon}, S::kReturning},
      {{S::kOnVf, E::kRevoke}, S::kLeaving},
      {{S::kOnVf, E::kDeviceReq}, S::kLeaving},
      {{S::kOnVf, E::kDeviceErr}, S::kLeaving},
      {{S::kOnVf, E::kShellStop}, S::kLeaving},
      {{S::kLeaving, E::kAcked}, S::kQuiescing},
      {{S::kLeaving, E::kAckTimedOut}, S::kQuiescing},
      {{S::kLeaving, E::kAbandon}, S::kReturning},
      {{S::kQuiescing, E::kQuiesceDone}, S::kDraining},
      {{S::kQuiescing, E::kQuiesceTimedOut}, S::kDraining},
      {{S::kQuiescing, E::kAbandon}, S::kReturning},
      {{S::kDraining, E::kAcked}, S::kReturning},
      {{S::kDraining, E::kAckTimedOut}, S::kReturning},
      {{S::kDraining, E::kAbandon}, S::kReturning},
      {{S::kReturning, E::kAcked}, S::kReleasing},
      {{S::kReturning, E::kAckTimedOut}, S::kReleasing},
      {{S::kReturning, E::kAbandon}, S::kReleasing},
      {{S::kReleasing, E::kReleased}, S::kEmulated},
      {{S::kReleasing, E::kAbandon}, S::kEmulated},
      {{S::kEmulated, E::kMigratePrepare}, S::kMigrateStopped},
      {{S::kMigrateStopped, E::kMigrateAbort}, S::kEmulated},
      {{S::kMigrateStopped, E::kMigrateCommit}, S::kReconnecting},
      {{S::kMigrateStopped, E::kSessionLost}, S::kReconnecting},
      {{S::kEmulated, E::kSessionLost}, S::kReconnecting},
      {{S::kOnVf, E::kSessionLost}, S::kOnVf},
      {{S::kReconnecting, E::kResumed}, S::kEmulated},
      {{S::kReconnecting, E::kResumeFailed}, S::kDetached},
      {{S::kDetached, E::kSessionLost}, S::kReconnecting},
  };
  return *m;
}

// A machine brought to `to` from EMULATED by legal events only (the route
// the table itself gives), asserting each step.
PathSwitch Reach(S to) {
  PathSwitch m;
  std::vector<S> path;
  std::vector<E> events;
  absl::Status s = PathSwitchTable::ShortestPath(S::kEmulated, to, &path, &events);
  EXPECT_TRUE(s.ok()) << s;
  for (E e : events) EXPECT_TRUE(m.Fire(e).ok()) << PathSwitchTraits::EventName(e);
  EXPECT_EQ(m.state(), to);
  return m;
}

TEST(PathSwitchTest, EveryStateAndEventPairIsAnArcOrARefusal) {
  size_t legal = 0;
  for (size_t f = 0; f < kStates; f++) {
    for (size_t v = 0; v < kEvents; v++) {
      const S from = static_cast<S>(f);
      const E e = static_cast<E>(v);
      SCOPED_TRACE(std::string(PathSwitchTraits::StateName(from)) + " + " +
                   PathSwitchTraits::EventName(e));
      PathSwitch m = Reach(from);
      const auto it = Expected().find({from, e});
      EXPECT_EQ(m.CanFire(e), it != Expected().end());
      EXPECT_EQ(m.Check(e).ok(), it != Expected().end());
      absl::Status s = m.Fire(e);
      if (it != Expected().end()) {
        legal++;
        EXPECT_TRUE(s.ok()) << s;
        EXPECT_EQ(m.state(), it->second);
      } else {
        EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(s.message(), std::string("path switch: ") + PathSwitchTraits::EventName(e) +
                                   " is illegal in state " + PathSwitchTraits::StateName(from));
        EXPECT_EQ(m.Check(e), s);
        EXPECT_EQ(m.state(), from) << "a refused event moves nothing";
      }
    }
  }
  EXPECT_EQ(legal, Expected().size());
  EXPECT_EQ(std::size(PathSwitchTraits::kArcs), Expected().size());
}

TEST(PathSwitchTest, OnlyTheWaitingStatesRestAndEveryStateReachesEmulated) {
  for (size_t f = 0; f < kStates; f++) {
    const S s = static_cast<S>(f);
    EXPECT_EQ(PathSwitch::Rests(s), s == S::kEmulated || s == S::kOnVf ||
                                        s == S::kMigrateStopped || s == S::kDetached)
        << PathSwitchTraits::StateName(s);
    // Whatever happens, there is a way back to the emulated path.
    std::vector<S> path;
    EXPECT_TRUE(PathSwitchTable::ShortestPath(s, S::kEmulated, &path).ok())
        << PathSwitchTraits::StateName(s);
    // ...and abandoning a VF step never strands the machine (RECONNECTING
    // ends by its own bound: resumed or resume failed).
    if (!PathSwitch::Rests(s) && s != S::kReconnecting) {
      EXPECT_TRUE(PathSwitchTable::Legal(s, E::kAbandon)) << PathSwitchTraits::StateName(s);
    }
  }
}

TEST(PathSwitchTest, TheWaitingStatesAreTheOnesWithQueuesToMove) {
  std::vector<S> waiting;
  for (size_t f = 0; f < kStates; f++)
    if (PathSwitch::WaitsForAcks(static_cast<S>(f))) waiting.push_back(static_cast<S>(f));
  EXPECT_EQ(waiting, (std::vector<S>{S::kEntering, S::kLeaving, S::kDraining, S::kReturning}));
}

TEST(PathSwitchTest, TheLastQueuesAckMovesTheMachine) {
  PathSwitch m = Reach(S::kEntering);
  ASSERT_TRUE(m.ExpectAcks(3, /*deadline_ns=*/1000).ok());
  EXPECT_TRUE(m.awaiting());
  EXPECT_TRUE(m.pending(0) && m.pending(1) && m.pending(2));
  EXPECT_FALSE(m.pending(3));
  ASSERT_TRUE(m.Ack(2).ok());
  ASSERT_TRUE(m.Ack(0).ok());
  ASSERT_TRUE(m.Ack(0).ok()) << "twice is harmless";
  EXPECT_EQ(m.state(), S::kEntering);
  EXPECT_FALSE(m.pending(0));
  EXPECT_TRUE(m.pending(1));
  ASSERT_TRUE(m.Tick(999).ok());
  EXPECT_EQ(m.state(), S::kEntering) << "before the bound";
  ASSERT_TRUE(m.Ack(1).ok());
  EXPECT_EQ(m.state(), S::kOnVf);
  EXPECT_FALSE(m.awaiting());
  EXPECT_FALSE(m.pending(1));
  // ON_VF waits for no acknowledgement.
  absl::Status s = m.Ack(1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "path switch: no acknowledgement is expected in state ON_VF");
  EXPECT_EQ(m.ExpectAcks(1, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.Tick(5000).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.state(), S::kOnVf);
}

TEST(PathSwitchTest, TheBoundMovesTheMachineWithQueuesStillPending) {
  PathSwitch m = Reach(S::kOnVf);
  ASSERT_TRUE(m.Fire(E::kRevoke).ok());
  ASSERT_TRUE(m.ExpectAcks(2, 1000).ok());
  ASSERT_TRUE(m.Ack(1).ok());
  ASSERT_TRUE(m.Tick(1000).ok());
  EXPECT_EQ(m.state(), S::kQuiescing) << "ack timed out";
  EXPECT_FALSE(m.awaiting());
  EXPECT_FALSE(m.pending(0)) << "the idle queue's ack is no longer expected";
  EXPECT_EQ(m.Ack(0).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PathSwitchTest, AcksBelongToTheStateTheyWereExpectedIn) {
  PathSwitch m = Reach(S::kLeaving);
  ASSERT_TRUE(m.ExpectAcks(2, 1000).ok());
  ASSERT_TRUE(m.Fire(E::kAbandon).ok());
  EXPECT_EQ(m.state(), S::kReturning);
  EXPECT_FALSE(m.awaiting()) << "RETURNING expects its own acks";
  EXPECT_EQ(m.Ack(0).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(m.ExpectAcks(1, 1000).ok());
  EXPECT_EQ(m.Ack(1).code(), absl::StatusCode::kInvalidArgument) << "one queue was switched";
  EXPECT_EQ(m.ExpectAcks(PathSwitch::kMaxQueues + 1, 0).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.Ack(0).ok());
  EXPECT_EQ(m.state(), S::kReleasing);
}

TEST(PathSwitchTest, NoQueuesMeansEveryQueueAcked) {
  PathSwitch m = Reach(S::kDraining);
  ASSERT_TRUE(m.ExpectAcks(0, 0).ok());
  EXPECT_EQ(m.state(), S::kReturning);
  EXPECT_FALSE(m.awaiting());
}

TEST(PathSwitchTest, AFullAttachAndFallbackFollowTheSteps) {
  PathSwitch m;
  const std::vector<std::pair<E, S>> steps = {
      {E::kOffer, S::kAttaching},       {E::kStartOk, S::kEntering},
      {E::kAcked, S::kOnVf},            {E::kDeviceErr, S::kLeaving},
      {E::kAckTimedOut, S::kQuiescing}, {E::kQuiesceTimedOut, S::kDraining},
      {E::kAcked, S::kReturning},       {E::kAcked, S::kReleasing},
      {E::kReleased, S::kEmulated},
  };
  for (const auto& [e, to] : steps) {
    ASSERT_TRUE(m.Fire(e).ok()) << PathSwitchTraits::EventName(e);
    EXPECT_EQ(m.state(), to);
    EXPECT_STREQ(m.state_name(), PathSwitchTraits::StateName(to));
  }
}

// docs/migration.md: the shell's side of a move, an abort, an unreachable
// destination and an agent restart, as the table sees them.
TEST(PathSwitchTest, MigrationAndRestartFollowTheSteps) {
  PathSwitch m;
  const std::vector<std::pair<E, S>> steps = {
      {E::kMigratePrepare, S::kMigrateStopped}, {E::kMigrateAbort, S::kEmulated},
      {E::kMigratePrepare, S::kMigrateStopped}, {E::kMigrateCommit, S::kReconnecting},
      {E::kResumeFailed, S::kDetached},         {E::kSessionLost, S::kReconnecting},
      {E::kResumed, S::kEmulated},              {E::kSessionLost, S::kReconnecting},
      {E::kResumed, S::kEmulated},
  };
  for (const auto& [e, to] : steps) {
    ASSERT_TRUE(m.Fire(e).ok()) << PathSwitchTraits::EventName(e);
    EXPECT_EQ(m.state(), to);
  }
  // While the rings are stopped or moving, no VF comes or goes, and a
  // second prepare is refused with the state named.
  ASSERT_TRUE(m.Fire(E::kMigratePrepare).ok());
  EXPECT_EQ(m.Check(E::kOffer).message(), "path switch: offer is illegal in state MIGRATE_STOPPED");
  EXPECT_FALSE(m.CanFire(E::kRevoke));
  EXPECT_FALSE(m.CanFire(E::kShellStop));
  EXPECT_EQ(m.Check(E::kMigratePrepare).message(),
            "path switch: migrate prepare is illegal in state MIGRATE_STOPPED");
  // A guest on a VF cannot be prepared: the agent revokes it first.
  PathSwitch v = Reach(S::kOnVf);
  EXPECT_EQ(v.Check(E::kMigratePrepare).message(),
            "path switch: migrate prepare is illegal in state ON_VF");
  ASSERT_TRUE(v.Fire(E::kSessionLost).ok());
  EXPECT_EQ(v.state(), S::kOnVf) << "the VF keeps forwarding while its agent restarts";
}

}  // namespace
}  // namespace npa::shell
