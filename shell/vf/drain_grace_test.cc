#include "shell/vf/drain_grace.h"

#include "gtest/gtest.h"

namespace npa::shell {
namespace {

// DRAINING's end (DrainGrace), on synthetic counts and times:
// a queue is drained only after an empty VF burst, and then only once the
// VF was quiet for quiet_ns or the grace ran out; frames that keep arriving
// keep it open (they are on their way to the VF: delivered, not lost).
TEST(DrainGraceTest, EmptyBurstThenQuietOrGrace) {
  constexpr uint64_t ms = 1000000;
  DrainGrace::Options o;
  o.grace_ns = 50 * ms;
  o.quiet_ns = 10 * ms;
  const uint64_t t0 = 1000 * ms;
  DrainGrace g(2, t0, o);
  // Base counts at the start.
  EXPECT_FALSE(g.Drained(0, 100, false, t0));
  EXPECT_FALSE(g.Drained(1, 7, false, t0));
  // Queue 1 idle: an empty burst alone is not enough before the VF was
  // quiet for 10 ms, then it is.
  EXPECT_FALSE(g.Drained(1, 7, true, t0 + 1 * ms));
  EXPECT_FALSE(g.Drained(1, 7, true, t0 + 9 * ms));
  EXPECT_TRUE(g.Drained(1, 7, true, t0 + 10 * ms));
  // Queue 0: frames keep trickling in every 4 ms; no empty burst yet.
  EXPECT_FALSE(g.Drained(0, 103, false, t0 + 2 * ms));
  // An empty burst, but a frame arrived 2 ms ago: still open.
  EXPECT_FALSE(g.Drained(0, 103, true, t0 + 4 * ms));
  EXPECT_FALSE(g.Drained(0, 104, true, t0 + 8 * ms));
  EXPECT_FALSE(g.Drained(0, 105, true, t0 + 12 * ms));
  EXPECT_FALSE(g.Drained(0, 105, true, t0 + 21 * ms));
  // 10 ms without a frame since t0 + 12 ms.
  EXPECT_TRUE(g.Drained(0, 105, true, t0 + 22 * ms));
  EXPECT_EQ(g.frames(), 5u);
}

TEST(DrainGraceTest, GraceBoundsAQueueThatNeverGoesQuiet) {
  constexpr uint64_t ms = 1000000;
  DrainGrace::Options o;
  o.grace_ns = 50 * ms;
  o.quiet_ns = 10 * ms;
  const uint64_t t0 = 5 * ms;
  DrainGrace g(1, t0, o);
  EXPECT_FALSE(g.Drained(0, 0, false, t0));
  uint64_t n = 0;
  uint64_t t = t0;
  bool done = false;
  for (int i = 0; i < 100 && !done; i++) {  // a frame every 2 ms
    t += 2 * ms;
    done = g.Drained(0, ++n, true, t);
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(t, t0 + 50 * ms) << "ends at the grace, not before";
  EXPECT_EQ(g.frames(), n);
  // Without an empty burst it never ends by itself (AwaitAcks' deadline does).
  DrainGrace h(1, t0, o);
  EXPECT_FALSE(h.Drained(0, 0, false, t0));
  EXPECT_FALSE(h.Drained(0, 0, false, t0 + 500 * ms));
  // A queue out of range is not waited for.
  EXPECT_TRUE(h.Drained(3, 0, false, t0));
}

}  // namespace
}  // namespace npa::shell
