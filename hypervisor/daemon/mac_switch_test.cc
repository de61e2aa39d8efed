#include "hypervisor/daemon/mac_switch.h"

#include <gtest/gtest.h>

#include <vector>

namespace npa::agent {
namespace {

constexpr uint64_t kSec = 1000ull * 1000 * 1000;

MacAddr M(uint8_t last, uint8_t first = 0x02) { return {first, 0, 0, 0, 0, last}; }

std::vector<uint8_t> Frame(const MacAddr& dst, const MacAddr& src, size_t len = 60) {
  std::vector<uint8_t> f(len, 0);
  std::copy(dst.begin(), dst.end(), f.begin());
  if (len >= 12) std::copy(src.begin(), src.end(), f.begin() + 6);
  return f;
}

Decision Fwd(MacSwitch& sw, const MacAddr& dst, const MacAddr& src, PortId in, uint64_t now = 1) {
  auto f = Frame(dst, src);
  return sw.Forward(f.data(), f.size(), in, now);
}

TEST(MacSwitchTest, UnknownUnicastFloodsThenLearnedIsUnicast) {
  MacSwitch sw({});
  Decision d = Fwd(sw, M(2), M(1), /*in=*/1);
  EXPECT_EQ(d.kind, Decision::kFlood);
  d = Fwd(sw, M(1), M(2), /*in=*/2);
  ASSERT_EQ(d.kind, Decision::kUnicast);
  EXPECT_EQ(d.port, 1u);
  d = Fwd(sw, M(2), M(1), /*in=*/1);
  ASSERT_EQ(d.kind, Decision::kUnicast);
  EXPECT_EQ(d.port, 2u);
  auto c = sw.counters();
  EXPECT_EQ(c.flooded, 1u);
  EXPECT_EQ(c.unicast, 2u);
  EXPECT_EQ(c.learned, 2u);
  EXPECT_EQ(c.entries, 2u);
}

TEST(MacSwitchTest, BroadcastAndMulticastFlood) {
  MacSwitch sw({});
  Fwd(sw, M(9), M(1), 1);
  MacAddr bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(Fwd(sw, bcast, M(2), 2).kind, Decision::kFlood);
  MacAddr mcast = {0x01, 0x00, 0x5e, 0, 0, 1};
  EXPECT_EQ(Fwd(sw, mcast, M(2), 2).kind, Decision::kFlood);
}

TEST(MacSwitchTest, NeverSendsBackToIngressPort) {
  MacSwitch sw({});
  Fwd(sw, M(9), M(1), 1);
  Fwd(sw, M(9), M(2), 1);  // both live behind port 1
  Decision d = Fwd(sw, M(1), M(2), 1);
  EXPECT_EQ(d.kind, Decision::kDrop);
  EXPECT_EQ(d.reason, Decision::kSamePort);
  EXPECT_EQ(sw.counters().dropped_same_port, 1u);
}

TEST(MacSwitchTest, RuntAndBadSourceDropped) {
  MacSwitch sw({});
  std::vector<uint8_t> runt(13, 0);
  EXPECT_EQ(sw.Forward(runt.data(), runt.size(), 1, 1).reason, Decision::kRunt);
  EXPECT_EQ(Fwd(sw, M(1), M(2, 0x03), 1).reason, Decision::kBadSource);  // multicast src
  EXPECT_EQ(Fwd(sw, M(1), MacAddr{}, 1).reason, Decision::kBadSource);   // zero src
  EXPECT_EQ(sw.size(), 0u);
}

TEST(MacSwitchTest, MacMovesBetweenPorts) {
  MacSwitch sw({});
  Fwd(sw, M(9), M(1), 1);
  Fwd(sw, M(9), M(1), 3);
  EXPECT_EQ(sw.Lookup(M(1), 1), 3u);
  EXPECT_EQ(sw.counters().moved, 1u);
}

TEST(MacSwitchTest, PinnedMacCannotBeClaimedByAnotherPort) {
  MacSwitch sw({});
  ASSERT_TRUE(sw.PinMac(M(1), 1).ok());
  Decision d = Fwd(sw, M(9), M(1), /*in=*/2);  // port 2 forges port 1's MAC
  EXPECT_EQ(d.kind, Decision::kDrop);
  EXPECT_EQ(d.reason, Decision::kSpoofed);
  EXPECT_EQ(sw.Lookup(M(1), 1), 1u);
  EXPECT_EQ(Fwd(sw, M(9), M(1), 1).kind, Decision::kFlood);  // owner is fine
  EXPECT_EQ(sw.counters().dropped_spoofed, 1u);
  // A second pin of the same MAC to another port is refused.
  EXPECT_EQ(sw.PinMac(M(1), 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sw.PinMac(M(1, 0x01), 2).code(), absl::StatusCode::kInvalidArgument);
}

TEST(MacSwitchTest, PinOverridesLearnedEntryAndNeverAges) {
  MacSwitch sw({.max_entries = 16, .aging_ns = 10 * kSec});
  Fwd(sw, M(9), M(1), 2, 1);
  ASSERT_TRUE(sw.PinMac(M(1), 1).ok());
  EXPECT_EQ(sw.Lookup(M(1), 100 * kSec), 1u);
  EXPECT_EQ(sw.Age(100 * kSec), 0u);
}

TEST(MacSwitchTest, EntriesAgeOut) {
  MacSwitch sw({.max_entries = 16, .aging_ns = 10 * kSec});
  Fwd(sw, M(9), M(1), 1, 1 * kSec);
  EXPECT_EQ(sw.Lookup(M(1), 5 * kSec), 1u);
  // Expired entries are not used even before a sweep.
  EXPECT_EQ(sw.Lookup(M(1), 11 * kSec), kNoPort);
  EXPECT_EQ(Fwd(sw, M(1), M(2), 2, 11 * kSec).kind, Decision::kFlood);
  EXPECT_EQ(sw.Age(11 * kSec), 1u);
  EXPECT_EQ(sw.counters().aged, 1u);
  EXPECT_EQ(sw.size(), 1u);  // M(2) remains
}

TEST(MacSwitchTest, TableSizeIsBounded) {
  MacSwitch sw({.max_entries = 4, .aging_ns = 10 * kSec});
  for (uint8_t i = 1; i <= 10; i++) Fwd(sw, M(0xee), M(i), 1, 1 * kSec);
  EXPECT_EQ(sw.size(), 4u);
  EXPECT_EQ(sw.counters().table_full, 6u);
  // Unlearned sources are still forwarded, their replies flood.
  EXPECT_EQ(Fwd(sw, M(10), M(0xaa), 2, 2 * kSec).kind, Decision::kFlood);
  // Once the old entries expire, learning resumes (an aging sweep on demand).
  Fwd(sw, M(0xee), M(0x42), 1, 20 * kSec);
  EXPECT_EQ(sw.Lookup(M(0x42), 20 * kSec), 1u);
}

TEST(MacSwitchTest, RemovePortForgetsItsEntries) {
  MacSwitch sw({});
  ASSERT_TRUE(sw.PinMac(M(1), 1).ok());
  Fwd(sw, M(9), M(2), 1);
  Fwd(sw, M(9), M(3), 2);
  sw.RemovePort(1);
  EXPECT_EQ(sw.Lookup(M(1), 1), kNoPort);
  EXPECT_EQ(sw.Lookup(M(2), 1), kNoPort);
  EXPECT_EQ(sw.Lookup(M(3), 1), 2u);
  // The MAC is free to be pinned by a new port now.
  EXPECT_TRUE(sw.PinMac(M(1), 5).ok());
}

TEST(MacSwitchTest, ParseAndFormatMac) {
  auto m = ParseMac("02:AB:cd:00:00:01");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(MacToString(*m), "02:ab:cd:00:00:01");
  EXPECT_FALSE(ParseMac("02:ab:cd:00:00").has_value());
  EXPECT_FALSE(ParseMac("02-ab-cd-00-00-01").has_value());
  EXPECT_FALSE(ParseMac("02:ab:cd:00:00:0g").has_value());
}

}  // namespace
}  // namespace npa::agent
