#include "hypervisor/daemon/dataplane_migration.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "common/clock.h"
#include "tests/support/fake_guest_port.h"

namespace npa::agent {
namespace {

std::vector<uint8_t> Eth(uint8_t dst0, uint8_t dst_last, uint8_t src_last, size_t len = 60) {
  std::vector<uint8_t> f(len, 0x5a);
  f[0] = dst0;
  for (int i = 1; i < 5; i++) f[i] = dst0 == 0xff ? 0xff : 0;
  f[5] = dst0 == 0xff ? 0xff : dst_last;
  f[6] = 0x02;
  for (int i = 7; i < 11; i++) f[i] = 0;
  f[11] = src_last;
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

struct Ref {
  explicit Ref(std::vector<uint8_t>& f) : seg{f.data(), f.size()}, p{nullptr, &seg, 1, static_cast<uint32_t>(f.size())} {}
  iovec seg;
  PacketRef p;
};

uint64_t Key(uint8_t last) {
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, last};
  return MacKey(mac);
}

std::string Held(const std::vector<uint8_t>& f) {
  std::string s(kHeldFrameHdrLen, '\0');
  s.append(reinterpret_cast<const char*>(f.data()), f.size());
  return s;
}

TEST(MacHoldTest, KeepsInOrderWithinItsFrameBoundAndCountsTheRest) {
  MacHold h(Key(1), 2);
  std::vector<uint8_t> a = Eth(0x02, 1, 9), b = Eth(0x02, 1, 8), c = Eth(0x02, 1, 7);
  Ref ra(a), rb(b), rc(c);
  EXPECT_TRUE(h.Append(ra.p));
  EXPECT_TRUE(h.Append(rb.p));
  EXPECT_FALSE(h.Append(rc.p));  // over max_frames
  HeldFrames t = h.Take();
  ASSERT_EQ(t.frames.size(), 2u);
  EXPECT_EQ(t.frames[0], Held(a));  // zero header (none came with it), then the frame
  EXPECT_EQ(t.frames[1], Held(b));
  EXPECT_EQ(t.dropped, 1u);
  // Take leaves the hold on, emptied: room again.
  EXPECT_TRUE(h.Append(rc.p));
  h.set_max_frames(1);
  EXPECT_FALSE(h.Append(ra.p));
  HeldFrames c2 = h.Close();
  ASSERT_EQ(c2.frames.size(), 1u);
  EXPECT_EQ(c2.frames[0], Held(c));
  EXPECT_EQ(c2.dropped, 1u);
  // Closed: counted as dropped, never kept.
  EXPECT_FALSE(h.Append(ra.p));
  EXPECT_EQ(h.Take().dropped, 1u);
}

TEST(MacHoldTest, ByteBoundHoldsWhateverTheFrameBound) {
  MacHold h(Key(1), 1u << 20);
  std::vector<uint8_t> big = Eth(0x02, 1, 9, 65536);
  Ref r(big);
  const size_t fits = kMaxHeldBytes / (kHeldFrameHdrLen + big.size());
  for (size_t i = 0; i < fits; i++) ASSERT_TRUE(h.Append(r.p)) << i;
  EXPECT_FALSE(h.Append(r.p));
  HeldFrames t = h.Take();
  EXPECT_EQ(t.frames.size(), fits);
  EXPECT_EQ(t.dropped, 1u);
}

TEST(RouteToHoldsTest, UnicastToAHeldMacIsConsumedOthersPass) {
  std::vector<std::shared_ptr<MacHold>> holds = {std::make_shared<MacHold>(Key(1), 8)};
  std::vector<uint8_t> to1 = Eth(0x02, 1, 9), to2 = Eth(0x02, 2, 9);
  Ref r1(to1), r2(to2);
  uint64_t kept = 0, dropped = 0;
  EXPECT_TRUE(RouteToHolds(holds, 0, r1.p, to1.data(), &kept, &dropped));
  EXPECT_FALSE(RouteToHolds(holds, 0, r2.p, to2.data(), &kept, &dropped));
  EXPECT_EQ(kept, 1u);
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(holds[0]->Take().frames.size(), 1u);
}

TEST(RouteToHoldsTest, BroadcastIsCopiedToEveryHoldButTheSendersAndStillDelivered) {
  std::vector<std::shared_ptr<MacHold>> holds = {std::make_shared<MacHold>(Key(1), 8),
                                                 std::make_shared<MacHold>(Key(2), 8),
                                                 std::make_shared<MacHold>(Key(3), 0)};
  std::vector<uint8_t> bc = Eth(0xff, 0, 1);  // source MAC ..:01
  Ref r(bc);
  uint64_t kept = 0, dropped = 0;
  // Sent by the port whose pinned MAC is ..:02, with source ..:01: neither
  // hold 1 (source) nor hold 2 (the sending port) gets a copy.
  EXPECT_FALSE(RouteToHolds(holds, Key(2), r.p, bc.data(), &kept, &dropped));
  EXPECT_EQ(holds[0]->Take().frames.size(), 0u);
  EXPECT_EQ(holds[1]->Take().frames.size(), 0u);
  EXPECT_EQ(kept, 0u);
  EXPECT_EQ(dropped, 1u);  // hold 3 has no room: counted
  EXPECT_FALSE(RouteToHolds(holds, 0, r.p, bc.data(), &kept, &dropped));
  EXPECT_EQ(kept, 1u);  // hold 2 only (hold 1 is the source)
  EXPECT_EQ(holds[1]->Take().frames.size(), 1u);
}

// The dataplane side of a ControlQueue, on its own thread: services while
// there is work, for at most 3 s.
struct Servicer {
  Servicer(ControlQueue& q, GuestPort* port, PortId id) {
    t = std::thread([&q, port, id, this] {
      const uint64_t end = MonotonicMs() + 3000;
      while (!stop.load() && MonotonicMs() < end) {
        if (q.pending())
          q.Service(MonotonicNs(), 32, [&](PortId g) { return g == id ? port : nullptr; });
        std::this_thread::yield();
      }
    });
  }
  ~Servicer() {
    stop = true;
    t.join();
  }
  std::atomic<bool> stop{false};
  std::thread t;
};

TEST(ControlQueueTest, InjectDeliversInOrderAndCountsMalformedAndUnknown) {
  ControlQueue q(nullptr);
  FakeGuestPort port(1);
  port.SetReady(true);
  std::vector<std::string> frames;
  for (uint8_t i = 0; i < 40; i++) frames.push_back(Held(Eth(0x02, 1, i)));
  frames.insert(frames.begin() + 5, std::string(kHeldFrameHdrLen + 3, 'x'));  // runt
  Servicer s(q, &port, 7);
  EXPECT_EQ(q.Inject(7, frames, true), 1u);
  auto rx = port.GuestReceived();
  ASSERT_EQ(rx.size(), 40u);
  for (uint8_t i = 0; i < 40; i++) EXPECT_EQ(rx[i][11], i);
  EXPECT_EQ(q.Inject(8, {Held(Eth(0x02, 1, 1))}, true), 1u);  // no such guest
  ControlQueueCounters c = q.counters();
  EXPECT_EQ(c.injected, 40u);
  EXPECT_EQ(c.inject_failed, 2u);
}

TEST(ControlQueueTest, InjectGivesUpWithoutRoomAndCountsWhatItDidNotDeliver) {
  ControlQueue q(nullptr);
  FakeGuestPort port(1, /*rx_room=*/3);
  port.SetReady(true);
  std::vector<std::string> frames(10, Held(Eth(0x02, 1, 1)));
  Servicer s(q, &port, 7);
  EXPECT_EQ(q.Inject(7, frames, true), 7u);  // after kMaxHoldNs without progress
  EXPECT_EQ(port.GuestReceived().size(), 3u);
  EXPECT_EQ(q.counters().injected + q.counters().inject_failed, 10u);
}

TEST(ControlQueueTest, NotRunningFailsAtOnceAndFailAllFreesAWaiter) {
  ControlQueue q(nullptr);
  EXPECT_EQ(q.Inject(7, {Held(Eth(0x02, 1, 1)), Held(Eth(0x02, 1, 2))}, false), 2u);
  EXPECT_EQ(q.counters().inject_failed, 2u);
  // A waiter whose dataplane stops: FailAll answers it well before its 3 s.
  std::thread waiter([&] { EXPECT_EQ(q.Inject(7, {Held(Eth(0x02, 1, 1))}, true), 1u); });
  const uint64_t end = MonotonicMs() + 2000;
  while (!q.pending() && MonotonicMs() < end) std::this_thread::yield();
  ASSERT_TRUE(q.pending());
  const uint64_t t0 = MonotonicMs();
  q.FailAll();
  waiter.join();
  EXPECT_LT(MonotonicMs() - t0, 2500u);
  EXPECT_EQ(q.counters().inject_failed, 3u);
}

TEST(ControlQueueTest, UplinkFramesNeedAnUplink) {
  ControlQueue q(nullptr);
  std::vector<uint8_t> f = Eth(0xff, 0, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(q.SendOnUplink(f, true)));
  EXPECT_FALSE(q.pending());
}

TEST(ControlQueueTest, WakesTheDataplaneThroughItsEventfd) {
  ControlQueue q(nullptr);
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  q.set_wake_fd(efd);
  FakeGuestPort port(1);
  port.SetReady(true);
  {
    Servicer s(q, &port, 7);
    EXPECT_EQ(q.Inject(7, {Held(Eth(0x02, 1, 1))}, true), 0u);
  }
  uint64_t v = 0;
  EXPECT_EQ(read(efd, &v, sizeof v), static_cast<ssize_t>(sizeof v));
  EXPECT_EQ(v, 1u);
  close(efd);
}

}  // namespace
}  // namespace npa::agent
