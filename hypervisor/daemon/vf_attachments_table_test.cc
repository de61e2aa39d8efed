// The guest table (guest_lifecycle.h) decides the VF path: each test asks
// for a step the table does not allow from the guest's state, through the
// public interface (npactl or the shell's messages), and checks the handling —
// a refused npactl request gets the reason in its AdminReply with nothing
// moved, a refused guest message gets Error{UNEXPECTED, reason} and the
// guest's session closes (which gives its VF back).
#include "hypervisor/daemon/vf_attachments_fixture.h"

namespace npa::agent::vf_test {
namespace {

// An attach is the arc RUNNING -> VF_OFFERED: a guest still NEGOTIATING is
// refused with the table's words, and nothing moves.
TEST_F(VfAttachmentsTest, AttachToAGuestTheTableDoesNotAllowIsRefusedWithTheReason) {
  ready_ = false;  // its queues never come up: it stays NEGOTIATING
  ControlChannel shell = HelloOnly("g1", 2);
  ASSERT_EQ(GuestState("g1"), "NEGOTIATING");
  auto r = Admin(AttachReq("g1", kVf));
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), Error::BUSY);
  EXPECT_EQ(r.error().message(), "guest g1 is NEGOTIATING: attach needs RUNNING");
  EXPECT_EQ(GuestState("g1"), "NEGOTIATING");
  EXPECT_EQ(VfState(), "FREE");
  EXPECT_EQ(vfio_.Count("map"), 0);
  EXPECT_TRUE(absl::IsDeadlineExceeded(shell.ReceiveBlocking(100).status())) << "no offer sent";
  // A detach there is refused the same way.
  r = Admin(DetachReq("g1"));
  EXPECT_EQ(r.error().message(), "guest g1 is NEGOTIATING and holds no VF: detach needs VF_ACTIVE or VF_OFFERED");
  ExpectSessionAlive(shell);
}

// A VfAccept is the arc VF_OFFERED -> VF_ACTIVE: one from a guest already
// VF_ACTIVE is refused (UNEXPECTED naming the state), its session closes and
// the close gives the VF back.
TEST_F(VfAttachmentsTest, AcceptTwiceIsRefusedByTheTableAndClosesTheGuest) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  ASSERT_EQ(GuestState("g0"), "VF_ACTIVE");
  ASSERT_TRUE(Answer(shell, id, true).ok());
  ExpectErrorThenClose(shell, Error::UNEXPECTED, "is VF_ACTIVE: vf_accept needs VF_OFFERED");
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();
  EXPECT_EQ(GuestState("g0"), "");  // gone
  EXPECT_EQ(vfio_.open_attachments(), 0);
}

// A VfAccept from a RUNNING guest that was never offered anything.
TEST_F(VfAttachmentsTest, StrayAcceptFromARunningGuestNamesTheState) {
  ControlChannel shell = Shell("g0");
  ASSERT_TRUE(Answer(shell, 4711, true).ok());
  ExpectErrorThenClose(shell, Error::UNEXPECTED,
                       "vf_accept for offer 4711, but guest 'g0' is RUNNING: vf_accept needs VF_OFFERED");
  EXPECT_EQ(GuestState("g0"), "");
}

// A planned detach is the arc VF_ACTIVE -> REVOKING: a second one while the
// first waits is refused, the first still completes.
TEST_F(VfAttachmentsTest, SecondDetachWhileRevokingIsRefused) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  ControlChannel admin = AdminAsync(DetachReq("g0"));
  auto rv = shell.ReceiveBlocking(3000);
  ASSERT_TRUE(rv.ok() && rv->env.has_revoke());
  ASSERT_EQ(GuestState("g0"), "REVOKING");
  auto r = Admin(DetachReq("g0"));
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), Error::BUSY);
  EXPECT_NE(r.error().message().find("guest g0 is REVOKING: a revoke of 0000:01:00.0 is already in progress"),
            std::string::npos)
      << r.error().message();
  r = Admin(AttachReq("g0", kVf));
  EXPECT_NE(r.error().message().find("already holds VF 0000:01:00.0: attach needs RUNNING"),
            std::string::npos)
      << r.error().message();
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  ASSERT_TRUE(shell.Send(done).ok());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  EXPECT_EQ(VfState(), "FREE");
}

// Detaching an offer the guest has not answered yet withdraws it
// (VF_OFFERED -> RUNNING); the npactl waiting on the attach is told.
TEST_F(VfAttachmentsTest, DetachOfAnUnansweredOfferWithdrawsIt) {
  ControlChannel shell = Shell("g0");
  ControlChannel attach = AdminAsync(AttachReq("g0", kVf));
  uint64_t id = ExpectOffer(shell);
  ASSERT_EQ(GuestState("g0"), "VF_OFFERED");
  auto r = Admin(DetachReq("g0"));
  EXPECT_FALSE(r.has_error()) << r.error().message();
  EXPECT_NE(r.message().find("without asking it"), std::string::npos) << r.message();
  auto a = Reply(attach);
  ASSERT_TRUE(a.has_error());
  EXPECT_NE(a.error().message().find("detached before the guest answered the offer"), std::string::npos)
      << a.error().message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();
  ASSERT_TRUE(Answer(shell, id, true).ok());  // late: ignored
  ExpectSessionAlive(shell);
}

}  // namespace
}  // namespace npa::agent::vf_test
