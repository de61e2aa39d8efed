// VFs re-adopted after an agent restart (vf_attachments.h "After an agent
// restart"): the agent starts on a roster that says guest g1 was using the
// pool's VF under offer 7; the fake VFIO's open fault plays the kernel's
// EBUSY on the group while g1's shell still holds the device fd.
#include "hypervisor/daemon/vf_attachments_fixture.h"

namespace npa::agent::vf_test {
namespace {

constexpr std::array<uint8_t, 6> kMac = {0x02, 0, 0, 0, 0, 0x21};

class VfAdoptTest : public VfAttachmentsTest {
 protected:
  VfAdoptTest() {
    roster_ = "g1 02:00:00:00:00:21 0000:01:00.0 7\n";
    vfio_.faults.open = true;  // g1's shell holds the device fd
  }

  // A shell back after losing its agent: Hello{name, mac, resume without a
  // ticket, both rings at 0}, Welcome, LinkState, RegionAnnounce; then waits
  // until the agent has it RUNNING or VF_ACTIVE.
  ControlChannel Resumed(const std::string& name, const std::array<uint8_t, 6>& mac,
                         bool resume = true) {
    ControlChannel ch = Connect();
    Envelope h;
    h.mutable_hello()->set_name(name);
    h.mutable_hello()->set_mac(std::string(mac.begin(), mac.end()));
    h.mutable_hello()->set_queue_pairs(1);
    if (resume) {
      for (uint32_t v = 0; v < 2; v++) {
        auto* vb = h.mutable_hello()->mutable_resume()->add_vrings();
        vb->set_vring(v);
        vb->set_next_avail(0);
        vb->set_used_idx(0);
      }
    }
    EXPECT_TRUE(ch.Send(h).ok());
    auto w = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(w.ok() && w->env.has_welcome()) << (w.ok() ? BodyName(w->env) : "");
    auto l = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(l.ok() && l->env.has_link());
    EXPECT_TRUE(Announce(ch, 2).ok());
    for (int i = 0; i < 200; i++) {
      const std::string st = GuestState(name);
      if (st == "RUNNING" || st == "VF_ACTIVE") break;
      usleep(10000);
    }
    return ch;
  }
  std::string Roster() {
    std::ifstream in(dir_ + "/agent.guests");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  bool RosterHas(const std::string& line) {
    return ("\n" + Roster()).find("\n" + line + "\n") != std::string::npos;
  }
  control::VfInfo Vf() {
    control::AdminRequest r;
    r.mutable_vf_list();
    auto rep = Admin(r);
    for (const auto& v : rep.vfs())
      if (v.pci_address() == kVf) return v;
    return {};
  }
  static void SendRevokeDone(ControlChannel& shell, uint64_t offer) {
    Envelope done;
    done.mutable_revoke_done()->set_offer_id(offer);
    ASSERT_TRUE(shell.Send(done).ok());
  }
  // A planned detach of g1: the Revoke the shell sees names `offer`.
  ControlChannel PlannedDetach(ControlChannel& shell, uint64_t offer, uint32_t timeout_ms = 0) {
    ControlChannel admin = AdminAsync(DetachReq("g1", false, timeout_ms));
    auto rv = shell.ReceiveBlocking(3000);
    EXPECT_TRUE(rv.ok()) << rv.status();
    if (rv.ok()) {
      EXPECT_TRUE(rv->env.has_revoke()) << BodyName(rv->env);
      EXPECT_EQ(rv->env.revoke().offer_id(), offer) << "the offer the shell holds";
    }
    return admin;
  }
};

// Before g1 is back, its VF is ADOPTED, named as g1's, and neither offered
// nor reset; once g1 resumes it is shown on the VF; a planned detach whose
// RevokeDone lets the group open reclaims the VF (reset) and g1 is back on
// the emulated path, attachable again.
TEST_F(VfAdoptTest, ReturnedGuestIsOnItsVfAndAPlannedDetachReclaimsIt) {
  ASSERT_TRUE(WaitVfState("ADOPTED"));
  EXPECT_EQ(Vf().guest(), "g1");
  EXPECT_EQ(Vf().offer_id(), 7u);
  // Another guest cannot have it; nor can the operator reset it.
  ControlChannel g2 = Shell("g2");
  auto att = Admin(AttachReq("g2", kVf));
  ASSERT_TRUE(att.has_error());
  EXPECT_NE(att.error().message().find("ADOPTED (held by guest 'g1')"), std::string::npos)
      << att.error().message();
  control::AdminRequest reset;
  reset.mutable_vf_reset()->set_pci(kVf);
  auto rs = Admin(reset);
  ASSERT_TRUE(rs.has_error());
  EXPECT_NE(rs.error().message().find("vf 0000:01:00.0 is ADOPTED: guest 'g1'"), std::string::npos)
      << rs.error().message();
  EXPECT_EQ(vfio_.Count("reset"), 0);
  // g2's arrival saved the roster: g1's VF is still recorded (not back yet).
  EXPECT_TRUE(RosterHas("g1 02:00:00:00:00:21 0000:01:00.0 7")) << Roster();

  ControlChannel g1 = Resumed("g1", kMac);
  EXPECT_EQ(GuestState("g1"), "VF_ACTIVE");
  EXPECT_EQ(GuestField("g1", /*path=*/true), "vf");
  EXPECT_EQ(Vf().state(), "ADOPTED");
  EXPECT_EQ(Vf().guest(), "g1");
  EXPECT_EQ(Vf().last_error(), "");
  // A RegionAnnounce while the VF is adopted is taken (nothing of the
  // agent's is mapped from the old one).
  ASSERT_TRUE(Announce(g1, 2).ok());
  ExpectSessionAlive(g1);
  // --force: no device fd to raise VFIO REQ on: refused, nothing changes.
  auto forced = Admin(DetachReq("g1", /*force=*/true));
  ASSERT_TRUE(forced.has_error());
  EXPECT_NE(forced.error().message().find("no device fd to raise VFIO REQ on"), std::string::npos)
      << forced.error().message();
  EXPECT_EQ(GuestState("g1"), "VF_ACTIVE");
  EXPECT_EQ(vfio_.Count("reset"), 0);

  ControlChannel admin = PlannedDetach(g1, 7);
  EXPECT_EQ(GuestState("g1"), "REVOKING");
  EXPECT_EQ(Vf().state(), "REVOKING");
  vfio_.faults.open = false;  // the shell quiesced and closed its device fd
  SendRevokeDone(g1, 7);
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("revoked from guest 'g1'"), std::string::npos) << rep.message();
  EXPECT_EQ(Vf().state(), "FREE");
  EXPECT_EQ(GuestState("g1"), "RUNNING");
  EXPECT_EQ(GuestField("g1", /*path=*/true), "emulated");
  EXPECT_EQ(vfio_.Count("reset"), 1) << "reclaimed: opened afresh and reset";
  EXPECT_EQ(vfio_.open_attachments(), 0);
  // An ordinary pooled VF again: offered with a new offer id.
  const uint64_t again = AttachAccepted(g1, "g1");
  EXPECT_GT(again, 7u);
}

// The shell answers the Revoke but the group is still busy (it kept the
// fd): the kernel has the last word. The VF stays ADOPTED, held by nobody
// connected, and the probe reclaims it once the fd closes.
TEST_F(VfAdoptTest, RevokeDoneWhileTheGroupIsBusyKeepsItAdoptedUntilTheFdCloses) {
  ControlChannel g1 = Resumed("g1", kMac);
  ASSERT_EQ(GuestState("g1"), "VF_ACTIVE");
  ControlChannel admin = PlannedDetach(g1, 7);
  SendRevokeDone(g1, 7);
  auto rep = Reply(admin);
  ASSERT_TRUE(rep.has_error());
  EXPECT_NE(rep.error().message().find("still held by guest 'g1'"), std::string::npos)
      << rep.error().message();
  EXPECT_EQ(GuestState("g1"), "RUNNING");
  EXPECT_EQ(Vf().state(), "ADOPTED");
  EXPECT_EQ(Vf().guest(), "g1");
  EXPECT_NE(Vf().last_error().find("still held"), std::string::npos) << Vf().last_error();
  usleep(100000);  // several probes (every 20 ms here), all busy
  EXPECT_EQ(Vf().state(), "ADOPTED");
  EXPECT_EQ(vfio_.Count("reset"), 0);
  vfio_.faults.open = false;
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(vfio_.Count("reset"), 1);
  EXPECT_EQ(Vf().guest(), "");
}

// No RevokeDone in time: nothing is reset or unbound (the agent holds no
// fd, and the guest may still drive the VF); it stays ADOPTED. The guest
// that goes away leaves it so too, until its fd closes.
TEST_F(VfAdoptTest, RevokeDeadlineAndGuestGoneLeaveItAdoptedNeverUnbound) {
  {
    ControlChannel g1 = Resumed("g1", kMac);
    ASSERT_EQ(GuestState("g1"), "VF_ACTIVE");
    ControlChannel admin = PlannedDetach(g1, 7, /*timeout_ms=*/150);
    auto rep = Reply(admin);
    ASSERT_TRUE(rep.has_error());
    EXPECT_NE(rep.error().message().find("still held by guest 'g1'"), std::string::npos)
        << rep.error().message();
    EXPECT_EQ(Vf().state(), "ADOPTED");
    SendRevokeDone(g1, 7);  // late: ignored, the session stays
    ExpectSessionAlive(g1);
  }  // g1's session closes (the process may live on with the VF)
  for (int i = 0; i < 200 && GuestState("g1") != ""; i++) usleep(10000);
  EXPECT_EQ(GuestState("g1"), "");
  EXPECT_EQ(Vf().state(), "ADOPTED");
  EXPECT_EQ(Vf().guest(), "g1");
  EXPECT_EQ(vfio_.Count("reset"), 0);
  // No guest left, but the roster keeps the orphan for a second restart.
  EXPECT_EQ(Roster(), "g1 02:00:00:00:00:21 0000:01:00.0 7\n");
  for (const auto& w : sys_->write_log) EXPECT_EQ(w.find("unbind"), std::string::npos) << w;
  vfio_.faults.open = false;
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(vfio_.Count("reset"), 1);
}

// Only the shell that held the VF can hold it now: a g1 that did not
// resume (a new process) or resumes under another MAC is not put on it.
TEST_F(VfAdoptTest, OnlyAResumeWithTheRostersMacIsReadopted) {
  {
    ControlChannel fresh = Resumed("g1", kMac, /*resume=*/false);
    EXPECT_EQ(GuestState("g1"), "RUNNING");
    EXPECT_EQ(GuestField("g1", /*path=*/true), "emulated");
    EXPECT_EQ(Vf().state(), "ADOPTED");
  }
  for (int i = 0; i < 200 && GuestState("g1") != ""; i++) usleep(10000);
  {
    ControlChannel other = Resumed("g1", {0x02, 0, 0, 0, 0, 0x22});
    EXPECT_EQ(GuestState("g1"), "RUNNING");
    EXPECT_EQ(Vf().state(), "ADOPTED");
  }
  for (int i = 0; i < 200 && GuestState("g1") != ""; i++) usleep(10000);
  // The right one still gets it.
  ControlChannel g1 = Resumed("g1", kMac);
  EXPECT_EQ(GuestState("g1"), "VF_ACTIVE");
  vfio_.faults.open = false;
  ControlChannel admin = PlannedDetach(g1, 7);
  SendRevokeDone(g1, 7);
  EXPECT_FALSE(Reply(admin).has_error());
  EXPECT_EQ(Vf().state(), "FREE");
}

}  // namespace
}  // namespace npa::agent::vf_test
