#include "hypervisor/daemon/idle_policy.h"

#include <gtest/gtest.h>

namespace npa::agent {
namespace {

constexpr uint64_t kUs = 1000;

TEST(IdlePolicyTest, WithoutModerationItSpinsThenSleepsAndWorkResetsTheCount) {
  IdlePolicy p({.spins = 3, .coalesce_ns = 0});
  EXPECT_EQ(p.After(0, 1), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, 2), IdleAction::kPoll);
  EXPECT_EQ(p.After(5, 3), IdleAction::kPoll);  // work: the count starts over
  EXPECT_EQ(p.After(0, 4), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, 5), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, 6), IdleAction::kSleep);
  // After the sleep the count starts over too.
  EXPECT_EQ(p.After(0, 7), IdleAction::kPoll);
  EXPECT_FALSE(p.moderated());
}

TEST(IdlePolicyTest, ZeroSpinsSleepsAfterTheFirstEmptyPoll) {
  IdlePolicy p({.spins = 0, .coalesce_ns = 0});
  EXPECT_EQ(p.After(0, 1), IdleAction::kSleep);
  EXPECT_EQ(p.After(1, 2), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, 3), IdleAction::kSleep);
}

TEST(IdlePolicyTest, ModerationWaitsAnIntervalAfterWorkWithoutSpinning) {
  IdlePolicy p({.spins = 2000, .coalesce_ns = 500 * kUs});
  ASSERT_TRUE(p.moderated());
  EXPECT_EQ(p.wait_ns(), 500 * kUs);
  const uint64_t t0 = 1'000'000'000;
  EXPECT_EQ(p.After(1, t0), IdleAction::kPoll);
  // The very first empty poll waits: the spins do not apply.
  EXPECT_EQ(p.After(0, t0 + 1), IdleAction::kWait);
  EXPECT_EQ(p.After(0, t0 + 500 * kUs), IdleAction::kWait);
  EXPECT_EQ(p.After(3, t0 + 1000 * kUs), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, t0 + 1001 * kUs), IdleAction::kWait);
}

TEST(IdlePolicyTest, ModerationEndsInASleepAfterTheDeepIdleTime) {
  IdlePolicy p({.spins = 2000, .coalesce_ns = 100 * kUs});
  const uint64_t t0 = 5'000'000'000;
  EXPECT_EQ(p.After(1, t0), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, t0 + IdlePolicy::kDeepIdleNs - 1), IdleAction::kWait);
  EXPECT_EQ(p.After(0, t0 + IdlePolicy::kDeepIdleNs), IdleAction::kSleep);
  // A sleep that timed out finds no work: it sleeps again, it does not go
  // back to waking every interval.
  EXPECT_EQ(p.After(0, t0 + IdlePolicy::kDeepIdleNs + 10'000'000), IdleAction::kSleep);
  // A kick's frame starts moderation again.
  EXPECT_EQ(p.After(1, t0 + 30'000'000), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, t0 + 30'000'001), IdleAction::kWait);
}

TEST(IdlePolicyTest, ALongIntervalKeepsModeratingForEightIntervals) {
  // 5 ms intervals: deep idle is 40 ms, not 10, or a guest at 150 frames/s
  // would be kicked awake between every second interval.
  IdlePolicy p({.spins = 0, .coalesce_ns = 5'000'000});
  const uint64_t t0 = 1'000'000'000;
  EXPECT_EQ(p.After(1, t0), IdleAction::kPoll);
  EXPECT_EQ(p.After(0, t0 + 39'999'999), IdleAction::kWait);
  EXPECT_EQ(p.After(0, t0 + 40'000'000), IdleAction::kSleep);
}

TEST(IdlePolicyTest, ModerationBeforeAnyWorkSleepsAtOnce) {
  IdlePolicy p({.spins = 2000, .coalesce_ns = 50 * kUs});
  EXPECT_EQ(p.After(0, 123), IdleAction::kSleep);
  EXPECT_EQ(p.After(0, 456), IdleAction::kSleep);
}

}  // namespace
}  // namespace npa::agent
