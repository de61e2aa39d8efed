#include "hypervisor/migration/migration_table.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace npa::migration {
namespace {

using SS = SourceState;
using SE = SourceEvent;
using DS = DestState;
using DE = DestEvent;

// The expected tables, written out again independently of kArcs: every
// (state, event) pair is either here (and lands where it says) or refused.
const std::map<std::pair<SS, SE>, SS>& ExpectedSource() {
  static const auto* m = new std::map<std::pair<SS, SE>, SS>{
      {{SS::kRunning, SE::kRevoke}, SS::kRevokingVf},
      {{SS::kRunning, SE::kOffer}, SS::kOffered},
      {{SS::kRevokingVf, SE::kOffer}, SS::kOffered},
      {{SS::kRevokingVf, SE::kAbort}, SS::kRunning},
      {{SS::kOffered, SE::kAccepted}, SS::kStopping},
      {{SS::kOffered, SE::kAbort}, SS::kRunning},
      {{SS::kStopping, SE::kReady}, SS::kStopCopy},
      {{SS::kStopping, SE::kAbort}, SS::kRunning},
      {{SS::kStopCopy, SE::kCommitted}, SS::kCommitted},
      {{SS::kStopCopy, SE::kAbort}, SS::kRunning},
      {{SS::kCommitted, SE::kDone}, SS::kDone},
      {{SS::kCommitted, SE::kFail}, SS::kError},
      {{SS::kCommitted, SE::kShellReturned}, SS::kRunning},
      {{SS::kCommitted, SE::kHoldExpired}, SS::kDone},
      {{SS::kError, SE::kShellReturned}, SS::kRunning},
      {{SS::kError, SE::kHoldExpired}, SS::kDone},
  };
  return *m;
}

const std::map<std::pair<DS, DE>, DS>& ExpectedDest() {
  static const auto* m = new std::map<std::pair<DS, DE>, DS>{
      {{DS::kReserved, DE::kCommit}, DS::kResuming},
      {{DS::kReserved, DE::kHoldExpired}, DS::kReleased},
      {{DS::kReserved, DE::kChannelLost}, DS::kReleased},
      {{DS::kResuming, DE::kResumed}, DS::kRunning},
      {{DS::kResuming, DE::kHoldExpired}, DS::kReleased},
      {{DS::kResuming, DE::kChannelLost}, DS::kResuming},
      {{DS::kResuming, DE::kFail}, DS::kError},
      {{DS::kRunning, DE::kChannelLost}, DS::kRunning},
      {{DS::kError, DE::kRelease}, DS::kReleased},
  };
  return *m;
}

// Drive a fresh machine to `s` along the table's own shortest route.
SourceMigration SourceAt(SS s) {
  SourceMigration m("g1");
  std::vector<SS> path;
  std::vector<SE> events;
  EXPECT_TRUE(SourceMigrationTable::ShortestPath(SS::kRunning, s, &path, &events).ok());
  for (SE e : events) EXPECT_TRUE(m.Fire(e).ok());
  EXPECT_EQ(m.state(), s);
  return m;
}

DestMigration DestAt(DS s) {
  DestMigration m("g1");
  std::vector<DS> path;
  std::vector<DE> events;
  EXPECT_TRUE(DestMigrationTable::ShortestPath(DS::kReserved, s, &path, &events).ok());
  for (DE e : events) EXPECT_TRUE(m.Fire(e).ok());
  EXPECT_EQ(m.state(), s);
  return m;
}

TEST(MigrationTableTest, SourceEveryStateEventPair) {
  size_t legal = 0, refused = 0;
  for (size_t si = 0; si < kNumSourceStates; si++) {
    for (size_t ei = 0; ei < kNumSourceEvents; ei++) {
      const SS s = static_cast<SS>(si);
      const SE e = static_cast<SE>(ei);
      SourceMigration m = SourceAt(s);
      absl::Status st = m.Fire(e);
      auto it = ExpectedSource().find({s, e});
      if (it != ExpectedSource().end()) {
        ASSERT_TRUE(st.ok()) << SourceStateName(s) << " + " << SourceEventName(e) << ": " << st;
        EXPECT_EQ(m.state(), it->second) << SourceStateName(s) << " + " << SourceEventName(e);
        legal++;
      } else {
        ASSERT_FALSE(st.ok()) << SourceStateName(s) << " + " << SourceEventName(e) << " was accepted";
        EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_EQ(st.message(), std::string("migration of guest g1: source migration: ") +
                                    SourceEventName(e) + " is illegal in state " +
                                    SourceStateName(s));
        EXPECT_EQ(m.state(), s) << "a refused event moved the machine";
        refused++;
      }
    }
  }
  EXPECT_EQ(legal, ExpectedSource().size());
  EXPECT_EQ(legal, std::size(SourceMigrationTraits::kArcs));
  EXPECT_EQ(legal + refused, kNumSourceStates * kNumSourceEvents);
}

TEST(MigrationTableTest, DestEveryStateEventPair) {
  size_t legal = 0, refused = 0;
  for (size_t si = 0; si < kNumDestStates; si++) {
    for (size_t ei = 0; ei < kNumDestEvents; ei++) {
      const DS s = static_cast<DS>(si);
      const DE e = static_cast<DE>(ei);
      DestMigration m = DestAt(s);
      absl::Status st = m.Fire(e);
      auto it = ExpectedDest().find({s, e});
      if (it != ExpectedDest().end()) {
        ASSERT_TRUE(st.ok()) << DestStateName(s) << " + " << DestEventName(e) << ": " << st;
        EXPECT_EQ(m.state(), it->second);
        legal++;
      } else {
        ASSERT_FALSE(st.ok()) << DestStateName(s) << " + " << DestEventName(e) << " was accepted";
        EXPECT_EQ(st.message(), std::string("migration of guest g1: destination migration: ") +
                                    DestEventName(e) + " is illegal in state " + DestStateName(s));
        EXPECT_EQ(m.state(), s);
        refused++;
      }
    }
  }
  EXPECT_EQ(legal, ExpectedDest().size());
  EXPECT_EQ(legal, std::size(DestMigrationTraits::kArcs));
  EXPECT_EQ(legal + refused, kNumDestStates * kNumDestEvents);
}

TEST(MigrationTableTest, SourceHappyPathWithAndWithoutVf) {
  for (bool vf : {false, true}) {
    SourceMigration m("g1");
    if (vf) {
      ASSERT_TRUE(m.Fire(SE::kRevoke).ok());
    }
    for (SE e : {SE::kOffer, SE::kAccepted, SE::kReady, SE::kCommitted, SE::kDone})
      ASSERT_TRUE(m.Fire(e).ok()) << SourceEventName(e);
    EXPECT_EQ(m.state(), SS::kDone);
    EXPECT_TRUE(SourceTerminal(m.state()));
  }
}

TEST(MigrationTableTest, EveryFailureBeforeCommitReturnsToRunning) {
  for (SS s : {SS::kRevokingVf, SS::kOffered, SS::kStopping, SS::kStopCopy}) {
    SourceMigration m = SourceAt(s);
    EXPECT_TRUE(SourceCanAbort(s));
    ASSERT_TRUE(m.Fire(SE::kAbort).ok());
    EXPECT_EQ(m.state(), SS::kRunning) << SourceStateName(s);
  }
  // After the commit, abort is no longer possible: the shell has gone to B.
  for (SS s : {SS::kRunning, SS::kCommitted, SS::kDone, SS::kError}) EXPECT_FALSE(SourceCanAbort(s));
}

TEST(MigrationTableTest, ErrorHasARecoveryAndEveryStateEndsOrReturns) {
  // From every state, DONE or RUNNING is reachable along arcs: no dead ends.
  for (size_t si = 0; si < kNumSourceStates; si++) {
    const SS s = static_cast<SS>(si);
    std::vector<SS> p;
    const bool done = s == SS::kDone || SourceMigrationTable::ShortestPath(s, SS::kDone, &p).ok();
    const bool running = s == SS::kRunning || SourceMigrationTable::ShortestPath(s, SS::kRunning, &p).ok();
    EXPECT_TRUE(done || running) << SourceStateName(s);
  }
  std::vector<SS> p;
  ASSERT_TRUE(SourceMigrationTable::ShortestPath(SS::kError, SS::kRunning, &p).ok());
  EXPECT_EQ(p, std::vector<SS>{SS::kRunning});
  ASSERT_TRUE(SourceMigrationTable::ShortestPath(SS::kError, SS::kDone, &p).ok());
  EXPECT_EQ(p, std::vector<SS>{SS::kDone});
  // DONE is terminal.
  for (size_t ei = 0; ei < kNumSourceEvents; ei++)
    EXPECT_FALSE(SourceMigrationTable::Legal(SS::kDone, static_cast<SE>(ei)));
}

TEST(MigrationTableTest, DestinationReleasesBeforeCommitAndKeepsResumingAfter) {
  DestMigration a("g1");
  ASSERT_TRUE(a.Fire(DE::kChannelLost).ok());
  EXPECT_EQ(a.state(), DS::kReleased);
  DestMigration b("g1");
  ASSERT_TRUE(b.Fire(DE::kHoldExpired).ok());
  EXPECT_EQ(b.state(), DS::kReleased);
  DestMigration c("g1");
  ASSERT_TRUE(c.Fire(DE::kCommit).ok());
  ASSERT_TRUE(c.Fire(DE::kChannelLost).ok());
  EXPECT_EQ(c.state(), DS::kResuming);
  ASSERT_TRUE(c.Fire(DE::kResumed).ok());
  EXPECT_EQ(c.state(), DS::kRunning);
  EXPECT_TRUE(DestTerminal(c.state()));
  for (size_t si = 0; si < kNumDestStates; si++) {
    const DS s = static_cast<DS>(si);
    if (DestTerminal(s)) continue;
    std::vector<DS> p;
    EXPECT_TRUE(DestMigrationTable::ShortestPath(s, DS::kReleased, &p).ok()) << DestStateName(s);
  }
}

TEST(MigrationTableTest, RingsStoppedStates) {
  EXPECT_FALSE(SourceRingsStopped(SS::kRunning));
  EXPECT_FALSE(SourceRingsStopped(SS::kStopping));  // not all of them yet
  EXPECT_TRUE(SourceRingsStopped(SS::kStopCopy));
  EXPECT_TRUE(SourceRingsStopped(SS::kCommitted));
}

}  // namespace
}  // namespace npa::migration
