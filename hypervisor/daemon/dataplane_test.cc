#include "hypervisor/daemon/dataplane.h"

#include <gtest/gtest.h>
#include <time.h>

#include "common/clock.h"
#include "tests/support/fake_guest_port.h"

namespace npa::agent {
namespace {

// Bounded wait (2 s) for a condition the dataplane thread makes true.
template <typename F>
bool WaitFor(F cond) {
  uint64_t deadline = MonotonicMs() + 2000;
  while (MonotonicMs() < deadline) {
    if (cond()) return true;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  return cond();
}

Dataplane::Options Opts(DataplaneMode m = DataplaneMode::kSwitch, uint32_t spins = 50,
                        int sleep_ms = 2) {
  Dataplane::Options o;
  o.mode = m;
  o.idle_spins = spins;
  o.idle_sleep_ms = sleep_ms;
  return o;
}

MacAddr M(uint8_t last) { return {0x02, 0, 0, 0, 0, last}; }
const MacAddr kBcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

std::vector<uint8_t> Frame(const MacAddr& dst, const MacAddr& src, uint8_t tag) {
  std::vector<uint8_t> f(60, tag);
  std::copy(dst.begin(), dst.end(), f.begin());
  std::copy(src.begin(), src.end(), f.begin() + 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

std::shared_ptr<FakeGuestPort> ReadyPort(uint16_t nq = 1) {
  auto p = std::make_shared<FakeGuestPort>(nq);
  p->SetReady(true);
  return p;
}

TEST(DataplaneTest, LoopbackReflectsIntoTheSameGuest) {
  Dataplane dp(Opts(DataplaneMode::kLoopback), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g, M(1)).ok());
  auto f = Frame(M(9), M(1), 0x11);
  g->GuestSend(0, f);
  ASSERT_TRUE(WaitFor([&] { return g->GuestReceived().size() == 1; }));
  EXPECT_EQ(g->GuestReceived()[0], f);
  EXPECT_EQ(g->tx_pending(), 0u);
  dp.Stop();
}

TEST(DataplaneTest, SinkConsumesAndCounts) {
  Dataplane dp(Opts(DataplaneMode::kSink), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g, std::nullopt).ok());
  for (int i = 0; i < 100; i++) g->GuestSend(0, Frame(M(9), M(1), static_cast<uint8_t>(i)));
  ASSERT_TRUE(WaitFor([&] { return dp.counters().sink_packets == 100; }));
  EXPECT_EQ(dp.counters().sink_bytes, 100u * 60);
  EXPECT_EQ(g->tx_pending(), 0u);
  EXPECT_TRUE(g->GuestReceived().empty());
}

TEST(DataplaneTest, SwitchFloodsThenUnicastsAndNeverReflects) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort(2), g3 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  ASSERT_TRUE(dp.AddGuest(3, g3, M(3)).ok());
  auto b = Frame(kBcast, M(1), 1);
  g1->GuestSend(0, b);
  ASSERT_TRUE(WaitFor([&] { return g2->GuestReceived().size() == 1 && g3->GuestReceived().size() == 1; }));
  EXPECT_TRUE(g1->GuestReceived().empty());
  // g1's MAC is pinned, so a unicast to it goes to g1 alone.
  auto u = Frame(M(1), M(2), 2);
  g2->GuestSend(1, u);
  ASSERT_TRUE(WaitFor([&] { return g1->GuestReceived().size() == 1; }));
  EXPECT_EQ(g1->GuestReceived()[0], u);
  EXPECT_EQ(g3->GuestReceived().size(), 1u);
  EXPECT_GE(dp.switch_counters().unicast, 1u);
  EXPECT_GE(dp.switch_counters().flooded, 1u);
}

TEST(DataplaneTest, SpoofedSourceIsDropped) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  g2->GuestSend(0, Frame(kBcast, M(1), 3));  // g2 claims g1's MAC
  ASSERT_TRUE(WaitFor([&] { return g2->tx_pending() == 0; }));
  ASSERT_TRUE(WaitFor([&] { return dp.switch_counters().dropped_spoofed == 1; }));
  EXPECT_TRUE(g1->GuestReceived().empty());
  // Same MAC for a second guest is refused up front.
  EXPECT_EQ(dp.AddGuest(3, ReadyPort(), M(1)).code(), absl::StatusCode::kAlreadyExists);
}

TEST(DataplaneTest, RemovedGuestIsNoLongerTouched) {
  Dataplane dp(Opts(DataplaneMode::kLoopback), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g, std::nullopt).ok());
  ASSERT_TRUE(dp.RemoveGuest(1).ok());
  g->GuestSend(0, Frame(M(9), M(1), 4));
  struct timespec ts = {0, 50 * 1000000};
  nanosleep(&ts, nullptr);
  EXPECT_EQ(g->tx_pending(), 1u);
  EXPECT_TRUE(g->GuestReceived().empty());
  // After RemoveGuest returned, only the test holds the port.
  EXPECT_TRUE(WaitFor([&] { return g.use_count() == 1; }));
}

TEST(DataplaneTest, IdlesIntoSleepAndWakesForWork) {
  Dataplane dp(Opts(DataplaneMode::kLoopback, 10, 5), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g, std::nullopt).ok());
  ASSERT_TRUE(WaitFor([&] { return dp.counters().sleeps >= 3; }));
  EXPECT_GT(g->idle_notify_calls.load(), 0);
  g->GuestSend(0, Frame(M(9), M(1), 5));
  ASSERT_TRUE(WaitFor([&] { return g->GuestReceived().size() == 1; }));
}

TEST(DataplaneTest, BadOptionsAndBadIds) {
  Dataplane::Options o = Opts();
  o.burst = 0;
  Dataplane bad(o, nullptr);
  EXPECT_EQ(bad.Start().code(), absl::StatusCode::kInvalidArgument);
  Dataplane dp(Opts(), nullptr);
  EXPECT_EQ(dp.AddGuest(kUplinkPort, ReadyPort(), std::nullopt).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(dp.AddGuest(4, ReadyPort(), std::nullopt).ok());  // before Start: no wait
  EXPECT_EQ(dp.AddGuest(4, ReadyPort(), std::nullopt).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace npa::agent
