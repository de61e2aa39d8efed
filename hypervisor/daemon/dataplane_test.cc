#include "hypervisor/daemon/dataplane.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <time.h>

#include <array>
#include <atomic>
#include <cstring>
#include <thread>

#include "common/announce.h"
#include "common/clock.h"
#include "hypervisor/daemon/guest_rss.h"
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

// A flood that no port can take (one guest, no uplink) is a lost frame,
// counted as such; once a second guest is there it is delivered instead.
TEST(DataplaneTest, FloodToNobodyIsCounted) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  g1->GuestSend(0, Frame(kBcast, M(1), 1));
  g1->GuestSend(0, Frame(M(9), M(1), 2));  // unknown unicast
  ASSERT_TRUE(WaitFor([&] { return dp.counters().flooded_to_nobody == 2; }))
      << dp.counters().flooded_to_nobody;
  EXPECT_EQ(dp.counters().flood_copies, 0u);
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  g1->GuestSend(0, Frame(kBcast, M(1), 3));
  ASSERT_TRUE(WaitFor([&] { return g2->GuestReceived().size() == 1; }));
  EXPECT_EQ(dp.counters().flooded_to_nobody, 2u);
  EXPECT_EQ(dp.counters().flood_copies, 1u);
}

// A guest with an RSS configuration (guest_rss.h) gets each frame on the
// queue its table names for the frame's flow, whatever queue it was sent
// from; a new configuration takes over; without one, the sender's queue.
TEST(DataplaneTest, RxQueueFollowsTheGuestsRssTable) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(2), g2 = ReadyPort(4);
  control::RssConfig c;
  c.set_key(std::string(reinterpret_cast<const char*>(kDefaultRssKey.data()), kDefaultRssKey.size()));
  c.set_hash_types(kRssAllTypes);
  for (int i = 0; i < 128; i++) c.add_table(i % 4);
  auto rss = GuestRss::FromConfig(c, 4);
  ASSERT_TRUE(rss.ok()) << rss.status();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2), *rss).ok());
  // 64 UDP/IPv4 flows from g1's queue 1 to g2.
  auto udp = [](uint16_t sport) {
    std::vector<uint8_t> f = Frame(M(2), M(1), 0);
    f[12] = 0x08, f[13] = 0x00;
    std::fill(f.begin() + 14, f.end(), 0);
    f[14] = 0x45, f[17] = 46, f[22] = 64, f[23] = 17;
    f[26] = 10, f[29] = 1, f[30] = 10, f[33] = 2;
    f[34] = sport >> 8, f[35] = sport & 0xff, f[36] = 0x12, f[37] = 0xb5, f[39] = 26;
    return f;
  };
  std::array<uint64_t, 4> want{};
  for (uint16_t p = 0; p < 64; p++) {
    const auto f = udp(static_cast<uint16_t>(5000 + p));
    want[(*rss)->QueueOf(f, 99)]++;
    g1->GuestSend(1, f);
  }
  for (uint16_t q = 0; q < 4; q++) EXPECT_GT(want[q], 0u) << "64 flows reach every queue";
  auto got = [&] {
    std::array<uint64_t, 4> n{};
    for (uint16_t q = 0; q < 4; q++) n[q] = g2->counters(q).rx_packets;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return got() == want; }))
      << got()[0] << " " << got()[1] << " " << got()[2] << " " << got()[3];
  // Every entry on queue 3: everything lands there.
  control::RssConfig all3 = c;
  for (int i = 0; i < 128; i++) all3.set_table(i, 3);
  auto rss3 = GuestRss::FromConfig(all3, 4);
  ASSERT_TRUE(rss3.ok());
  ASSERT_TRUE(dp.SetGuestRss(2, *rss3).ok());
  for (uint16_t p = 0; p < 16; p++) g1->GuestSend(0, udp(static_cast<uint16_t>(6000 + p)));
  ASSERT_TRUE(WaitFor([&] { return got()[3] == want[3] + 16; })) << got()[3];
  EXPECT_EQ(got()[0], want[0]);
  // None: the sender's queue (1 here).
  ASSERT_TRUE(dp.SetGuestRss(2, nullptr).ok());
  for (uint16_t p = 0; p < 8; p++) g1->GuestSend(1, udp(static_cast<uint16_t>(7000 + p)));
  ASSERT_TRUE(WaitFor([&] { return got()[1] == want[1] + 8; })) << got()[1];
  EXPECT_EQ(dp.SetGuestRss(9, nullptr).code(), absl::StatusCode::kNotFound);
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

// Interrupt moderation: while a guest streams, the thread waits intervals
// with kicks off (no SetIdleNotify(true) between frames) and still delivers
// every frame; after the deep-idle time it sleeps until kicked again.
TEST(DataplaneTest, ModerationWaitsIntervalsWithoutKicksAndDeliversEverything) {
  Dataplane::Options o = Opts(DataplaneMode::kLoopback, 10, 5);
  o.coalesce_us = 200;
  Dataplane dp(o, nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g, std::nullopt).ok());
  // Nothing has happened yet: it sleeps (arms kicks) like without moderation.
  ASSERT_TRUE(WaitFor([&] { return dp.counters().sleeps >= 1; }));
  g->GuestSend(0, Frame(M(9), M(1), 0));
  ASSERT_TRUE(WaitFor([&] { return g->GuestReceived().size() == 1; }));
  // Stream 40 frames 1 ms apart (5 intervals each): the thread waits
  // intervals between them, and arms kicks at most a few times (the sleep
  // it was in when the first one came, and none while they flow).
  const int notify_before = g->idle_notify_calls.load();
  const uint64_t waits_before = dp.counters().coalesced_waits;
  for (int i = 1; i <= 40; i++) {
    g->GuestSend(0, Frame(M(9), M(1), static_cast<uint8_t>(i)));
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return g->GuestReceived().size() == 41; }));
  for (int i = 0; i <= 40; i++) EXPECT_EQ(g->GuestReceived()[i][14], i) << "frame " << i;
  EXPECT_GE(dp.counters().coalesced_waits - waits_before, 40u);
  // Each sleep arms and disarms (2 calls). A sleep needs 10 ms without a
  // frame: a preempted test thread may cause one or two, 40 would not.
  EXPECT_LE(g->idle_notify_calls.load() - notify_before, 8);
  // Then, idle for longer than the deep-idle time, it sleeps again.
  const uint64_t sleeps = dp.counters().sleeps;
  ASSERT_TRUE(WaitFor([&] { return dp.counters().sleeps >= sleeps + 2; }));
  g->GuestSend(0, Frame(M(9), M(1), 41));
  ASSERT_TRUE(WaitFor([&] { return g->GuestReceived().size() == 42; }));
}

TEST(DataplaneTest, BadOptionsAndBadIds) {
  Dataplane::Options o = Opts();
  o.burst = 0;
  Dataplane bad(o, nullptr);
  EXPECT_EQ(bad.Start().code(), absl::StatusCode::kInvalidArgument);
  o = Opts();
  o.coalesce_us = 10001;
  Dataplane bad_coalesce(o, nullptr);
  EXPECT_EQ(bad_coalesce.Start().code(), absl::StatusCode::kInvalidArgument);
  Dataplane dp(Opts(), nullptr);
  EXPECT_EQ(dp.AddGuest(kUplinkPort, ReadyPort(), std::nullopt).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(dp.AddGuest(4, ReadyPort(), std::nullopt).ok());  // before Start: no wait
  EXPECT_EQ(dp.AddGuest(4, ReadyPort(), std::nullopt).code(), absl::StatusCode::kAlreadyExists);
}

// ---- migration API ----------------------------------------------------

std::string Held(const std::vector<uint8_t>& f) {
  std::string s(kHeldFrameHdrLen, '\0');
  s.append(reinterpret_cast<const char*>(f.data()), f.size());
  return s;
}

TEST(DataplaneHoldTest, UnicastForAHeldMacIsKeptInOrderThenReleased) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort(), g3 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  ASSERT_TRUE(dp.AddGuest(3, g3, M(3)).ok());
  ASSERT_TRUE(dp.HoldMac(M(2), 100).ok());
  std::vector<std::vector<uint8_t>> sent;
  for (uint8_t i = 0; i < 3; i++) {
    sent.push_back(Frame(M(2), M(1), static_cast<uint8_t>(0x40 + i)));
    g1->GuestSend(0, sent.back());
  }
  ASSERT_TRUE(WaitFor([&] { return dp.counters().held == 3; }));
  Dataplane::HeldFrames h = dp.TakeHeld(M(2));
  ASSERT_EQ(h.frames.size(), 3u);
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(h.frames[i], Held(sent[i])) << i;
  EXPECT_EQ(h.dropped, 0u);
  EXPECT_TRUE(g2->GuestReceived().empty());
  EXPECT_TRUE(g3->GuestReceived().empty());  // not flooded either
  // The hold stays on after TakeHeld.
  auto late = Frame(M(2), M(1), 0x50);
  g1->GuestSend(0, late);
  ASSERT_TRUE(WaitFor([&] { return dp.counters().held == 4; }));
  h = dp.ReleaseMac(M(2));
  ASSERT_EQ(h.frames.size(), 1u);
  EXPECT_EQ(h.frames[0], Held(late));
  // Released: frames flow to g2 again.
  auto after = Frame(M(2), M(1), 0x51);
  g1->GuestSend(0, after);
  ASSERT_TRUE(WaitFor([&] { return g2->GuestReceived().size() == 1; }));
  EXPECT_EQ(g2->GuestReceived()[0], after);
  EXPECT_TRUE(dp.ReleaseMac(M(2)).frames.empty());  // not held any more
  EXPECT_TRUE(dp.TakeHeld(M(2)).frames.empty());
}

TEST(DataplaneHoldTest, BoundIsCountedAndBroadcastCopiesAreHeld) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort(), g3 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  ASSERT_TRUE(dp.AddGuest(3, g3, M(3)).ok());
  ASSERT_TRUE(dp.HoldMac(M(2), 2).ok());
  // A broadcast still reaches g3; g2's copy goes to the hold.
  auto b = Frame(kBcast, M(1), 0x60);
  g1->GuestSend(0, b);
  ASSERT_TRUE(WaitFor([&] { return g3->GuestReceived().size() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return dp.counters().held == 1; }));
  EXPECT_TRUE(g2->GuestReceived().empty());
  // g2's own broadcasts are not held for g2.
  g2->GuestSend(0, Frame(kBcast, M(2), 0x61));
  ASSERT_TRUE(WaitFor([&] { return g3->GuestReceived().size() == 2; }));
  for (uint8_t i = 0; i < 4; i++) g1->GuestSend(0, Frame(M(2), M(1), i));
  ASSERT_TRUE(WaitFor([&] { return dp.counters().held_dropped == 3; }));
  Dataplane::HeldFrames h = dp.ReleaseMac(M(2));
  ASSERT_EQ(h.frames.size(), 2u);
  EXPECT_EQ(h.frames[0], Held(b));
  EXPECT_EQ(h.frames[1], Held(Frame(M(2), M(1), 0)));
  EXPECT_EQ(h.dropped, 3u);
  EXPECT_EQ(dp.counters().held, 2u);
  // Bad MACs are refused.
  EXPECT_EQ(dp.HoldMac(kBcast, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dp.HoldMac(MacAddr{}, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DataplaneHoldTest, HoldOutlivesTheGuestAndStopsTheFlood) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort(), g2 = ReadyPort(), g3 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, M(2)).ok());
  ASSERT_TRUE(dp.AddGuest(3, g3, M(3)).ok());
  ASSERT_TRUE(dp.HoldMac(M(2), 10).ok());
  ASSERT_TRUE(dp.RemoveGuest(2).ok());  // the source removes the guest
  auto u = Frame(M(2), M(1), 0x70);    // now an unknown unicast
  g1->GuestSend(0, u);
  ASSERT_TRUE(WaitFor([&] { return dp.counters().held == 1; }));
  EXPECT_TRUE(g3->GuestReceived().empty());
  EXPECT_EQ(dp.ReleaseMac(M(2)).frames.at(0), Held(u));
}

TEST(DataplaneInjectTest, InjectedFramesArriveInOrderAndMisfitsAreCounted) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto g1 = ReadyPort();
  auto small = std::make_shared<FakeGuestPort>(1, /*rx_room=*/2);
  small->SetReady(true);
  ASSERT_TRUE(dp.AddGuest(1, g1, M(1)).ok());
  ASSERT_TRUE(dp.AddGuest(2, small, M(2)).ok());
  std::vector<std::string> in;
  for (uint8_t i = 0; i < 5; i++) in.push_back(Held(Frame(M(1), M(9), i)));
  in.insert(in.begin() + 2, std::string("short"));  // malformed: counted
  EXPECT_EQ(dp.InjectRx(1, in), 1u);
  auto got = g1->GuestReceived();
  ASSERT_EQ(got.size(), 5u);
  for (uint8_t i = 0; i < 5; i++) EXPECT_EQ(got[i], Frame(M(1), M(9), i));
  // No such guest: all of them.
  EXPECT_EQ(dp.InjectRx(77, {Held(Frame(M(1), M(9), 1))}), 1u);
  // Room for 2: the other 3 are returned after the no-progress limit.
  std::vector<std::string> three;
  for (uint8_t i = 0; i < 5; i++) three.push_back(Held(Frame(M(2), M(9), i)));
  uint64_t t0 = MonotonicMs();
  EXPECT_EQ(dp.InjectRx(2, three), 3u);
  EXPECT_LT(MonotonicMs() - t0, 1500u);
  EXPECT_EQ(small->GuestReceived().size(), 2u);
  EXPECT_EQ(dp.counters().inject_failed, 1u + 1u + 3u);
  EXPECT_EQ(dp.counters().injected, 5u + 2u);
  dp.Stop();
  EXPECT_EQ(dp.InjectRx(1, {Held(Frame(M(1), M(9), 1))}), 1u);  // not running
}

TEST(DataplaneUplinkTest, SendOnUplinkNeedsAnUplink) {
  Dataplane dp(Opts(), nullptr);
  ASSERT_TRUE(dp.Start().ok());
  auto f = BuildRarpAnnounce(std::span<const uint8_t, 6>(M(1)));
  EXPECT_EQ(dp.SendOnUplink(f).code(), absl::StatusCode::kFailedPrecondition);
}

// SendOnUplink through a real TAP, in a private network namespace so no
// interface name is shared with anything else.
TEST(DataplaneUplinkTest, SendOnUplinkReachesTheWireWithoutBlocking) {
  int pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: its own namespace; exit status is the verdict.
    if (unshare(CLONE_NEWNET) != 0) _exit(2);
    auto up = TapUplink::Create({.name = "npadp%d"});
    if (!up.ok()) _exit(3);
    int pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (pkt < 0) _exit(4);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = (*up)->ifindex();
    if (bind(pkt, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) _exit(5);
    timeval tv{2, 0};
    setsockopt(pkt, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    Dataplane dp(Opts(), up->get());
    if (!dp.Start().ok()) _exit(6);
    auto f = BuildRarpAnnounce(std::span<const uint8_t, 6>(M(7)));
    if (!dp.SendOnUplink(f).ok()) _exit(7);
    // Sent by this thread before the call returned, not left for the loop.
    if (dp.counters().uplink_control != 1) _exit(12);
    if (dp.SendOnUplink(std::span<const uint8_t>(f.data(), 10)).code() !=
        absl::StatusCode::kInvalidArgument)
      _exit(8);
    uint8_t buf[2048];
    for (int tries = 0; tries < 20; tries++) {
      ssize_t n = recv(pkt, buf, sizeof buf, 0);
      if (n < 0) _exit(9);
      std::array<uint8_t, 6> mac;
      if (ParseRarpAnnounce(std::span<const uint8_t>(buf, static_cast<size_t>(n)), &mac) &&
          mac == M(7)) {
        if (!WaitFor([&] { return dp.counters().uplink_control == 1; })) _exit(10);
        _exit(0);
      }
    }
    _exit(11);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "child step that failed (see the test source)";
}

// ---- fairness and checked bytes -----------------------------------------

TEST(DataplaneFairnessTest, ABusyGuestGetsABurstPerPollOverAllItsQueues) {
  Dataplane::Options o = Opts(DataplaneMode::kSink);
  o.burst = 8;
  Dataplane dp(o, nullptr);
  auto busy = ReadyPort(4);
  for (uint16_t q = 0; q < 4; q++)
    for (int i = 0; i < 64; i++) busy->GuestSend(q, Frame(M(9), M(1), static_cast<uint8_t>(i)));
  ASSERT_TRUE(dp.AddGuest(1, busy, std::nullopt).ok());
  ASSERT_TRUE(dp.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return dp.counters().sink_packets == 256; }));
  // 256 frames at 8 per poll: at least 32 polls, each one stopping at the
  // budget with work left over (not 4 queues x 8).
  EXPECT_GE(dp.counters().budget_yields, 31u - 1);
  Dataplane::Options bad = Opts();
  bad.desc_budget = 4;  // below the burst
  EXPECT_EQ(Dataplane(bad, nullptr).Start().code(), absl::StatusCode::kInvalidArgument);
}

// A port whose TX frames all point at one buffer in "guest memory" that a
// guest thread rewrites all the time.
class RacyPort final : public GuestPort {
 public:
  uint8_t buf[64] = {};
  std::atomic<uint64_t> peeked{0};
  int fd() const override { return -1; }
  absl::Status OnReadable() override { return absl::OkStatus(); }
  uint16_t num_queue_pairs() const override { return 1; }
  bool QueueReady(uint16_t) const override { return true; }
  bool broken() const override { return false; }
  std::string broken_reason() const override { return ""; }
  QueueCounters counters(uint16_t) const override { return {}; }
  uint64_t generation() const override { return 1; }
  uint16_t PeekTx(uint16_t, GuestFrame* out, uint16_t n) override {
    for (uint16_t k = 0; k < n; k++) {
      out[k].hdr = {};
      out[k].len = 60;
      out[k].nsegs = 1;
      out[k].head = 0;
      out[k].segs[0] = {buf, 60};
    }
    peeked += n;
    return n;
  }
  void ReleaseTx(uint16_t, uint16_t) override {}
  uint16_t EnqueueRx(uint16_t, const PacketRef*, uint16_t n, RxFull) override { return n; }
  std::vector<int> NotifyFds() override { return {}; }
  void SetIdleNotify(bool) override {}
};

TEST(DataplaneCheckedBytesTest, AHeaderRewrittenAfterTheCheckIsNeverDelivered) {
  Dataplane dp(Opts(), nullptr);
  auto racy = std::make_shared<RacyPort>();
  auto victim = ReadyPort();  // owns M(2), the MAC the rewriter forges
  auto dst = std::make_shared<FakeGuestPort>(1, /*rx_room=*/1u << 20);
  dst->SetReady(true);
  const MacAddr own = M(1), forged = M(2);
  std::memcpy(racy->buf, M(3).data(), 6);
  std::memcpy(racy->buf + 6, own.data(), 6);
  racy->buf[12] = 0x88;
  racy->buf[13] = 0xb5;
  ASSERT_TRUE(dp.AddGuest(1, racy, own).ok());
  ASSERT_TRUE(dp.AddGuest(2, victim, forged).ok());
  ASSERT_TRUE(dp.AddGuest(3, dst, M(3)).ok());
  std::atomic<bool> stop{false};
  std::thread rewriter([&] {
    // The hostile guest flips its source MAC between its own and the
    // forged one as fast as it can (byte stores, as a guest CPU would).
    for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); i++) {
      const MacAddr& m = (i & 1) ? forged : own;
      for (int b = 0; b < 6; b++) __atomic_store_n(&racy->buf[6 + b], m[b], __ATOMIC_RELAXED);
    }
  });
  ASSERT_TRUE(dp.Start().ok());
  const uint64_t deadline = MonotonicMs() + 300;
  while (MonotonicMs() < deadline && dst->counters(0).rx_packets < 200000) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, nullptr);
  }
  dp.Stop();
  stop = true;
  rewriter.join();
  auto got = dst->GuestReceived();
  ASSERT_GT(got.size(), 100u);
  size_t forged_seen = 0;
  for (const auto& f : got) {
    MacAddr src;
    std::memcpy(src.data(), f.data() + 6, 6);
    forged_seen += src != own;
  }
  EXPECT_EQ(forged_seen, 0u) << "of " << got.size() << " delivered frames";
  // Every frame peeked was delivered or dropped as spoofed, exactly.
  EXPECT_EQ(got.size() + dp.switch_counters().dropped_spoofed, racy->peeked.load());
  EXPECT_TRUE(victim->GuestReceived().empty());
}

// loops() is the watchdog's progress check: it moves while the thread runs
// and stands still once it stopped. Guests() lists the published members.
TEST(DataplaneTest, LoopsMovesWhileRunningAndGuestsListsTheMembers) {
  Dataplane dp(Opts(DataplaneMode::kSink), nullptr);
  EXPECT_EQ(dp.loops(), 0u);
  EXPECT_TRUE(dp.Guests().empty());
  ASSERT_TRUE(dp.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return dp.loops() > 0; }));
  const uint64_t before = dp.loops();
  ASSERT_TRUE(WaitFor([&] { return dp.loops() > before; }));
  EXPECT_EQ(dp.loops(), dp.counters().loops);
  auto g1 = ReadyPort(), g2 = ReadyPort();
  ASSERT_TRUE(dp.AddGuest(1, g1, std::nullopt).ok());
  ASSERT_TRUE(dp.AddGuest(2, g2, std::nullopt).ok());
  auto gs = dp.Guests();
  ASSERT_EQ(gs.size(), 2u);
  EXPECT_EQ(gs[0].id, 1u);
  EXPECT_EQ(gs[0].port, g1);
  EXPECT_EQ(gs[1].id, 2u);
  ASSERT_TRUE(dp.RemoveGuest(1).ok());
  gs = dp.Guests();
  ASSERT_EQ(gs.size(), 1u);
  EXPECT_EQ(gs[0].id, 2u);
  dp.Stop();
  const uint64_t stopped = dp.loops();
  struct timespec ts = {0, 20000000};
  nanosleep(&ts, nullptr);
  EXPECT_EQ(dp.loops(), stopped);
}

}  // namespace
}  // namespace npa::agent
