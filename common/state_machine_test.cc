#include "common/state_machine.h"

#include "gtest/gtest.h"

namespace npa {
namespace {

enum class Door : uint8_t { kClosed, kOpen, kLocked };
enum class Push : uint8_t { kOpen, kClose, kLock, kUnlock };

struct DoorTraits {
  using State = Door;
  using Event = Push;
  static constexpr const char* kName = "door";
  static constexpr size_t kNumStates = 3, kNumEvents = 4;
  static const char* StateName(Door s) {
    constexpr const char* k[] = {"CLOSED", "OPEN", "LOCKED"};
    return k[static_cast<size_t>(s)];
  }
  static const char* EventName(Push e) {
    constexpr const char* k[] = {"open", "close", "lock", "unlock"};
    return k[static_cast<size_t>(e)];
  }
  static constexpr Arc<Door, Push> kArcs[] = {
      {Door::kClosed, Push::kOpen, Door::kOpen},
      {Door::kOpen, Push::kClose, Door::kClosed},
      {Door::kClosed, Push::kLock, Door::kLocked},
      {Door::kLocked, Push::kUnlock, Door::kClosed},
  };
};

enum class Phase : uint8_t { kA, kB, kC, kD };
struct PhaseTraits {
  using State = Phase;
  using Event = Phase;
  static constexpr const char* kName = "phase";
  static constexpr size_t kNumStates = 4, kNumEvents = 4;
  static const char* StateName(Phase s) {
    constexpr const char* k[] = {"A", "B", "C", "D"};
    return k[static_cast<size_t>(s)];
  }
  static const char* EventName(Phase s) { return StateName(s); }
  static constexpr Arc<Phase, Phase> kArcs[] = {
      Edge(Phase::kA, Phase::kB), Edge(Phase::kB, Phase::kC), Edge(Phase::kA, Phase::kC),
      Edge(Phase::kC, Phase::kA)};
};

// The table is data the compiler can read.
static_assert(TransitionTable<DoorTraits>::Legal(Door::kClosed, Push::kOpen));
static_assert(!TransitionTable<DoorTraits>::Legal(Door::kOpen, Push::kLock));
static_assert(*TransitionTable<DoorTraits>::Next(Door::kLocked, Push::kUnlock) == Door::kClosed);

TEST(StateMachineTest, FiresLegalArcsAndRefusesTheRestWithoutMoving) {
  StateMachine<DoorTraits> d(Door::kClosed);
  ASSERT_TRUE(d.Fire(Push::kOpen).ok());
  EXPECT_EQ(d.state(), Door::kOpen);
  absl::Status s = d.Fire(Push::kLock);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "door: lock is illegal in state OPEN");
  EXPECT_EQ(d.state(), Door::kOpen);
  EXPECT_FALSE(d.CanFire(Push::kUnlock));
  EXPECT_TRUE(d.CanFire(Push::kClose));
}

TEST(StateMachineTest, EveryPairIsEitherAnArcOrAnError) {
  size_t legal = 0;
  for (size_t f = 0; f < DoorTraits::kNumStates; f++)
    for (size_t e = 0; e < DoorTraits::kNumEvents; e++) {
      StateMachine<DoorTraits> d(static_cast<Door>(f));
      absl::Status s = d.Fire(static_cast<Push>(e));
      bool in_table = false;
      for (const auto& a : DoorTraits::kArcs)
        if (a.from == static_cast<Door>(f) && a.event == static_cast<Push>(e)) {
          in_table = true;
          EXPECT_EQ(d.state(), a.to);
        }
      EXPECT_EQ(s.ok(), in_table) << f << "," << e;
      if (!in_table) {
        EXPECT_EQ(d.state(), static_cast<Door>(f));
      }
      legal += in_table;
    }
  EXPECT_EQ(legal, std::size(DoorTraits::kArcs));
}

TEST(StateMachineTest, TargetStateLifecycleNamesBothStates) {
  StateMachine<PhaseTraits> p(Phase::kA);
  ASSERT_TRUE(p.Transition(Phase::kB).ok());
  absl::Status s = p.Transition(Phase::kA);
  EXPECT_EQ(s.message(), "phase: illegal transition B -> A");
  EXPECT_EQ(p.state(), Phase::kB);
}

TEST(StateMachineTest, ShortestPathFollowsTheArcs) {
  std::vector<Phase> path;
  ASSERT_TRUE(TransitionTable<PhaseTraits>::ShortestPath(Phase::kA, Phase::kC, &path).ok());
  EXPECT_EQ(path, std::vector<Phase>{Phase::kC});
  ASSERT_TRUE(TransitionTable<PhaseTraits>::ShortestPath(Phase::kB, Phase::kA, &path).ok());
  EXPECT_EQ(path, (std::vector<Phase>{Phase::kC, Phase::kA}));
  ASSERT_TRUE(TransitionTable<PhaseTraits>::ShortestPath(Phase::kB, Phase::kB, &path).ok());
  EXPECT_TRUE(path.empty());
  absl::Status s = TransitionTable<PhaseTraits>::ShortestPath(Phase::kA, Phase::kD, &path);
  EXPECT_EQ(s.message(), "phase: no path from A to D");

  std::vector<Door> dpath;
  std::vector<Push> ev;
  ASSERT_TRUE(TransitionTable<DoorTraits>::ShortestPath(Door::kOpen, Door::kLocked, &dpath, &ev).ok());
  EXPECT_EQ(dpath, (std::vector<Door>{Door::kClosed, Door::kLocked}));
  EXPECT_EQ(ev, (std::vector<Push>{Push::kClose, Push::kLock}));
}

}  // namespace
}  // namespace npa
