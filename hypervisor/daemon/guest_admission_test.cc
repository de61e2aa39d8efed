#include "hypervisor/daemon/guest_admission.h"

#include <unistd.h>

#include <string>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "hypervisor/daemon/guest_registry_testing.h"

namespace npa::agent {
namespace {

using control::Error;

control::Hello HelloNamed(const std::string& name, uint32_t qp = 1) {
  control::Hello h;
  h.set_name(name);
  h.set_queue_pairs(qp);
  return h;
}


TEST(GuestAdmissionTest, GuestNames) {
  EXPECT_EQ(CheckGuestName("vm-01_a.b"), "");
  EXPECT_NE(CheckGuestName(""), "");
  EXPECT_NE(CheckGuestName("x\xc3\xa9"), "");
  EXPECT_NE(CheckGuestName(std::string(64, 'x')), "");
  EXPECT_EQ(CheckGuestName(std::string(63, 'x')), "");
}

TEST(GuestAdmissionTest, AHelloWithFdsOrABadNameIsMalformed) {
  HelloVerdict v = CheckHelloFrame(HelloNamed("g1"), 2);
  EXPECT_EQ(v.code, Error::MALFORMED);
  EXPECT_EQ(v.problem, "hello carries 2 fds; it takes none");
  v = CheckHelloFrame(HelloNamed("a b"), 0);
  EXPECT_EQ(v.code, Error::MALFORMED);
  EXPECT_NE(v.problem.find("0x20"), std::string::npos) << v.problem;
  EXPECT_TRUE(CheckHelloFrame(HelloNamed("g1"), 0).ok());
}

TEST(GuestAdmissionTest, ANewGuestGetsAFreeMacOrTheOneItAskedFor) {
  GuestRegistry r("agent");
  HelloVerdict v = CheckNewGuestHello(HelloNamed("g1"), r, 4);
  ASSERT_TRUE(v.ok()) << v.problem;
  EXPECT_EQ(v.mac[0], 0x02) << "locally administered, unicast";
  control::Hello h = HelloNamed("g2");
  const char want[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  h.set_mac(std::string(want, 6));
  v = CheckNewGuestHello(h, r, 4);
  ASSERT_TRUE(v.ok()) << v.problem;
  EXPECT_EQ(MacToString(v.mac), "02:11:22:33:44:55");
}

TEST(GuestAdmissionTest, RefusalsNameWhatWasWrong) {
  GuestRegistry r("agent");
  Guest& g = RunningShellGuest(r, "taken");
  HelloVerdict v = CheckNewGuestHello(HelloNamed("taken"), r, 4);
  EXPECT_EQ(v.code, Error::BUSY);
  EXPECT_NE(v.problem.find("'taken' is in use"), std::string::npos) << v.problem;

  control::Hello h = HelloNamed("g2");
  h.set_mac(std::string(reinterpret_cast<const char*>(g.mac->data()), 6));
  v = CheckNewGuestHello(h, r, 4);
  EXPECT_EQ(v.code, Error::BUSY);
  EXPECT_NE(v.problem.find("in use by another guest"), std::string::npos) << v.problem;

  h.set_mac(std::string("\x01\x00\x5e\x00\x00\x01", 6));
  v = CheckNewGuestHello(h, r, 4);
  EXPECT_EQ(v.code, Error::MALFORMED);
  EXPECT_NE(v.problem.find("not a unicast address"), std::string::npos) << v.problem;

  h.set_mac("abc");
  v = CheckNewGuestHello(h, r, 4);
  EXPECT_EQ(v.problem, "hello.mac is 3 bytes; want 0 or 6");

  v = CheckNewGuestHello(HelloNamed("g3", 5), r, 4);
  EXPECT_EQ(v.code, Error::MALFORMED);
  EXPECT_EQ(v.problem, "hello.queue_pairs 5 outside 1..4");
  v = CheckNewGuestHello(HelloNamed("g3", 0), r, 4);
  EXPECT_EQ(v.code, Error::MALFORMED);

  control::Hello res = HelloNamed("g4", 1);
  res.mutable_resume()->add_vrings();  // one ring for a pair that has two
  v = CheckNewGuestHello(res, r, 4);
  EXPECT_EQ(v.code, Error::MALFORMED);
  EXPECT_FALSE(v.problem.empty());
}

class RestartGateTest : public ::testing::Test {
 protected:
  void TearDown() override { unlink(path_.c_str()); }
  const std::string path_ = "/tmp/npa-gate-test-" + std::to_string(getpid());
};

TEST_F(RestartGateTest, NoRosterMeansOpen) {
  RestartGate gate(path_, 1000, nullptr);
  gate.Load();
  EXPECT_FALSE(gate.holding());
  EXPECT_EQ(gate.MsUntilDeadline(0), -1);
  RestartGate none("", 1000, nullptr);
  GuestRegistry r("agent");
  RunningShellGuest(r, "g1");
  none.Save(r);
  EXPECT_NE(access(path_.c_str(), F_OK), 0) << "no path, no file";
}

TEST_F(RestartGateTest, HoldsUntilEveryListedGuestIsBack) {
  {
    GuestRegistry r("agent");
    RunningShellGuest(r, "g1");
    RunningShellGuest(r, "g2");
    RestartGate before(path_, 1000, nullptr);
    before.Save(r);
  }
  RestartGate gate(path_, 60000, nullptr);
  gate.Load();
  ASSERT_TRUE(gate.holding());
  EXPECT_EQ(gate.awaited().size(), 2u);
  EXPECT_GT(gate.MsUntilDeadline(MonotonicMs()), 0);
  gate.OnGuestRunning("stranger");
  gate.OnGuestRunning("g1");
  EXPECT_TRUE(gate.holding()) << "g2 is not back yet";
  gate.OnGuestRunning("g2");
  EXPECT_FALSE(gate.holding());
  EXPECT_TRUE(gate.awaited().empty());
}

TEST_F(RestartGateTest, OpensWhenTheGraceIsOverAndStopKeepsTheFile) {
  GuestRegistry r("agent");
  RunningShellGuest(r, "g1");
  RestartGate first(path_, 1000, nullptr);
  first.Save(r);
  RestartGate gate(path_, 50, nullptr);
  gate.Load();
  ASSERT_TRUE(gate.holding());
  gate.Tick(MonotonicMs() + 51);
  EXPECT_FALSE(gate.holding());
  EXPECT_EQ(gate.MsUntilDeadline(MonotonicMs()), -1);
  // Stopping: the guests close, but the file keeps g1 for the next agent.
  gate.Stop();
  GuestRegistry empty("agent");
  gate.Save(empty);
  auto back = LoadRoster(path_);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].name, "g1");
}

// VFs still ADOPTED for a guest that is not connected are saved after the
// guests (so a second restart keeps them), and Load hands every line with
// its VF to the VF side (loaded()); their guests are awaited like the rest.
TEST_F(RestartGateTest, SavesOrphanedVfsAndLoadKeepsTheirEntries) {
  GuestRegistry r("agent");
  RunningShellGuest(r, "g1");
  RestartGate first(path_, 1000, nullptr);
  RosterEntry orphan{"g9", {0x02, 0, 0, 0, 0, 0x09}, "0000:03:00.0", 5};
  first.Save(r, {orphan});
  RestartGate gate(path_, 60000, nullptr);
  gate.Load();
  ASSERT_EQ(gate.loaded().size(), 2u);
  EXPECT_EQ(gate.loaded()[0].name, "g1");
  EXPECT_EQ(gate.loaded()[0].vf_bdf, "");
  EXPECT_EQ(gate.loaded()[1].name, "g9");
  EXPECT_EQ(gate.loaded()[1].vf_bdf, "0000:03:00.0");
  EXPECT_EQ(gate.loaded()[1].vf_offer, 5u);
  EXPECT_EQ(gate.awaited(), (std::set<std::string>{"g1", "g9"}));
}

}  // namespace
}  // namespace npa::agent
