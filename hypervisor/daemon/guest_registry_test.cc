#include "hypervisor/daemon/guest_registry.h"

#include <gtest/gtest.h>

namespace npa::agent {
namespace {

TEST(GuestRegistryTest, FindsByNameOrIdAndIdsAreNeverReused) {
  GuestRegistry r("agent");
  const uint64_t skipped = r.NewId();  // taken, never added
  Guest& a = r.Add(r.NewId());
  a.name = "g0";
  Guest& b = r.Add(r.NewId());
  b.name = "7";  // a name that looks like an id
  EXPECT_EQ(a.id, skipped + 1);
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.Find("g0"), &a);
  EXPECT_EQ(r.Find(std::to_string(a.id)), &a);
  EXPECT_EQ(r.Find("7"), &b);
  EXPECT_EQ(r.Find("nobody"), nullptr);
  EXPECT_EQ(r.Get(a.id), &a);
  EXPECT_TRUE(r.NameInUse("g0"));
  EXPECT_EQ(r.ids(), (std::vector<uint64_t>{a.id, b.id}));
  const uint64_t aid = a.id;
  r.Erase(aid);
  EXPECT_EQ(r.Get(aid), nullptr);
  EXPECT_FALSE(r.NameInUse("g0"));
  EXPECT_GT(r.NewId(), b.id);
}

TEST(GuestRegistryTest, AssignedMacsAreLocalUnicastAndFree) {
  GuestRegistry r("agent");
  auto m = r.AssignMac();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ((*m)[0], 0x02);
  EXPECT_FALSE(r.MacInUse(*m));
  Guest& g = r.Add(r.NewId());
  g.mac = m;
  EXPECT_TRUE(r.MacInUse(*m));
  auto n = r.AssignMac();
  ASSERT_TRUE(n.has_value());
  EXPECT_NE(*n, *m);
  // The salt is the agent's name: the same name gives the same MACs.
  EXPECT_EQ(GuestRegistry("agent").AssignMac(), GuestRegistry("agent").AssignMac());
  EXPECT_NE(GuestRegistry("agent").AssignMac(), GuestRegistry("other").AssignMac());
}

TEST(GuestRegistryTest, MoveFollowsTheTableAndRefusesNamingBothStates) {
  GuestRegistry r("agent");
  Guest& g = r.Add(r.NewId());
  g.name = "g0";
  ASSERT_TRUE(g.Move(GuestState::kNegotiating).ok());
  absl::Status s = g.Move(GuestState::kVfActive);
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_EQ(s.message(), "guest lifecycle: illegal transition NEGOTIATING -> VF_ACTIVE");
  EXPECT_EQ(g.lc.state(), GuestState::kNegotiating);
}

TEST(GuestRegistryTest, BreakMovesToBrokenOnlyWhereTheTableAllows) {
  GuestRegistry r("agent");
  Guest& g = r.Add(r.NewId());
  ASSERT_TRUE(g.Move(GuestState::kNegotiating).ok());
  g.Break("first reason");
  EXPECT_EQ(g.lc.state(), GuestState::kBroken);
  g.Break("second reason");  // already BROKEN: the first reason stays
  EXPECT_EQ(g.broken_reason, "first reason");
  ASSERT_TRUE(g.Move(GuestState::kClosing).ok());
  g.Break("too late");  // CLOSING has no arc to BROKEN: it stays CLOSING
  EXPECT_EQ(g.lc.state(), GuestState::kClosing);
}

TEST(GuestRegistryTest, CopiesQueueCounters) {
  QueueCounters c{};
  c.rx_packets = 1;
  c.rx_bytes = 2;
  c.rx_dropped = 3;
  c.tx_packets = 4;
  c.tx_bytes = 5;
  c.tx_dropped = 6;
  control::QueueCounters out;
  CopyQueueCounters(3, c, &out);
  EXPECT_EQ(out.queue(), 3u);
  EXPECT_EQ(out.rx_packets(), 1u);
  EXPECT_EQ(out.rx_bytes(), 2u);
  EXPECT_EQ(out.rx_dropped(), 3u);
  EXPECT_EQ(out.tx_packets(), 4u);
  EXPECT_EQ(out.tx_bytes(), 5u);
  EXPECT_EQ(out.tx_dropped(), 6u);
}

}  // namespace
}  // namespace npa::agent
