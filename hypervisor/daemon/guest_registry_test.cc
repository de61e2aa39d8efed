#include "hypervisor/daemon/guest_registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "hypervisor/daemon/guest_registry_testing.h"

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

// The restart roster (docs/security.md "Agent restart"): only served shell
// guests are listed, it round-trips, and a damaged file is refused naming
// the line.
TEST(GuestRegistryTest, RestartRosterListsServedShellGuestsAndRoundTrips) {
  GuestRegistry r("agent");
  Guest& a = r.Add(r.NewId());
  a.name = "g-a";
  a.transport = "control";
  a.mac = r.AssignMac();
  ASSERT_TRUE(a.Move(GuestState::kNegotiating).ok());
  ASSERT_TRUE(a.Move(GuestState::kReady).ok());
  ASSERT_TRUE(a.Move(GuestState::kRunning).ok());
  Guest& b = r.Add(r.NewId());  // still negotiating: not listed
  b.name = "g-b";
  b.transport = "control";
  b.mac = r.AssignMac();
  ASSERT_TRUE(b.Move(GuestState::kNegotiating).ok());
  Guest& v = r.Add(r.NewId());  // a vhost-user socket guest: not listed
  v.name = "vhost3";
  v.transport = "vhost-user-socket";
  ASSERT_TRUE(v.Move(GuestState::kNegotiating).ok());
  ASSERT_TRUE(v.Move(GuestState::kReady).ok());
  ASSERT_TRUE(v.Move(GuestState::kRunning).ok());
  std::vector<RosterEntry> ros = RosterOf(r);
  ASSERT_EQ(ros.size(), 1u);
  EXPECT_EQ(ros[0].name, "g-a");

  const std::string path = "/tmp/npa-roster-test-" + std::to_string(getpid());
  EXPECT_TRUE(absl::IsNotFound(LoadRoster(path).status()));
  ASSERT_TRUE(SaveRoster(path, ros).ok());
  auto back = LoadRoster(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].name, "g-a");
  EXPECT_EQ((*back)[0].mac, *a.mac);
  EXPECT_EQ(access((path + ".tmp").c_str(), F_OK), -1);  // renamed, not left behind

  for (const char* bad : {"g-a 01:00:00:00:00:01\n", "bad/name 02:00:00:00:00:01\n", "g-a\n",
                          "g-a 02:00:00:00:00:01 extra\n"}) {
    std::ofstream(path) << "ok 02:00:00:00:00:09\n" << bad;
    auto st = LoadRoster(path);
    EXPECT_TRUE(absl::IsInvalidArgument(st.status())) << bad;
    EXPECT_NE(std::string(st.status().message()).find("line 2"), std::string::npos)
        << st.status();
  }
  for (const char* bad : {"g-a 02:00:00:00:00:01 0000:03:00.0\n",         // BDF without offer
                          "g-a 02:00:00:00:00:01 ../../etc 5\n",           // not a PCI address
                          "g-a 02:00:00:00:00:01 0000:03:00.9 5\n",        // function 9
                          "g-a 02:00:00:00:00:01 0000:03:00.0 0\n",        // offer 0
                          "g-a 02:00:00:00:00:01 0000:03:00.0 seven\n",
                          "g-a 02:00:00:00:00:01 0000:03:00.0 5 more\n"}) {
    std::ofstream(path) << "ok 02:00:00:00:00:09\n" << bad;
    auto st = LoadRoster(path);
    EXPECT_TRUE(absl::IsInvalidArgument(st.status())) << bad;
    EXPECT_NE(std::string(st.status().message()).find("line 2"), std::string::npos)
        << st.status();
  }
  ASSERT_TRUE(SaveRoster(path, {}).ok());  // no guests: an empty roster, nothing awaited
  back = LoadRoster(path);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
  unlink(path.c_str());
}

// A guest using a VF is listed with the VF's PCI address and the offer id
// its shell holds (the next agent re-adopts the VF, vf_attachments.h); an
// offer not yet accepted is not; an older agent's two-field lines still load.
TEST(GuestRegistryTest, RestartRosterRecordsTheVfAGuestUses) {
  GuestRegistry r("agent");
  auto running = [&](const char* name) -> Guest& { return RunningShellGuest(r, name); };
  Guest& a = running("g-vf");
  ASSERT_TRUE(a.Move(GuestState::kVfOffered).ok());
  a.offer_id = 7;
  a.vf_bdf = "0000:03:00.0";
  Guest& b = running("g-offered");  // offered, not accepted: no VF field
  ASSERT_TRUE(b.Move(GuestState::kVfOffered).ok());
  b.offer_id = 8;
  b.vf_bdf = "0000:04:00.0";
  Guest& c = running("g-revoking");
  ASSERT_TRUE(c.Move(GuestState::kVfOffered).ok());
  ASSERT_TRUE(c.Move(GuestState::kVfActive).ok());
  ASSERT_TRUE(c.Move(GuestState::kRevoking).ok());
  c.offer_id = 9;
  c.vf_bdf = "0000:05:00.1";
  ASSERT_TRUE(a.Move(GuestState::kVfActive).ok());
  std::vector<RosterEntry> ros = RosterOf(r);
  ASSERT_EQ(ros.size(), 3u);
  EXPECT_EQ(ros[0].vf_bdf, "0000:03:00.0");
  EXPECT_EQ(ros[0].vf_offer, 7u);
  EXPECT_EQ(ros[1].vf_bdf, "");
  EXPECT_EQ(ros[1].vf_offer, 0u);
  EXPECT_EQ(ros[2].vf_bdf, "0000:05:00.1");
  EXPECT_EQ(ros[2].vf_offer, 9u);

  const std::string path = "/tmp/npa-roster-vf-test-" + std::to_string(getpid());
  ASSERT_TRUE(SaveRoster(path, ros).ok());
  {
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(first, "g-vf " + MacToString(*a.mac) + " 0000:03:00.0 7");
  }
  auto back = LoadRoster(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 3u);
  EXPECT_EQ((*back)[0].vf_bdf, "0000:03:00.0");
  EXPECT_EQ((*back)[0].vf_offer, 7u);
  EXPECT_EQ((*back)[1].vf_bdf, "");
  EXPECT_EQ((*back)[2].vf_offer, 9u);
  // An older agent's roster: two fields a line, no VF.
  std::ofstream(path) << "old 02:00:00:00:00:0a\nnew 02:00:00:00:00:0b 0000:03:00.0 12\n";
  back = LoadRoster(path);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].name, "old");
  EXPECT_EQ((*back)[0].vf_bdf, "");
  EXPECT_EQ((*back)[1].vf_bdf, "0000:03:00.0");
  EXPECT_EQ((*back)[1].vf_offer, 12u);
  unlink(path.c_str());
}

}  // namespace
}  // namespace npa::agent
