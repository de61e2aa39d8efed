// AdminService on its own: requests go in as frames, replies come out on the
// other end of a socketpair. Guests are FakeGuestPorts in a registry; there
// is no VF pool (the VF path with one is vf_attachments_test).
#include "hypervisor/daemon/admin_service.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/fake_guest_port.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

class AdminServiceTest : public ::testing::Test {
 protected:
  AdminServiceTest()
      : guests_("admin-agent"),
        vf_({}, nullptr, &guests_, {}),
        mig_({}, &guests_, nullptr, nullptr, {}),
        admin_("admin-agent", &guests_, nullptr, &vf_, &mig_) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    agent_ = std::make_unique<ControlChannel>(UniqueFd(sv[0]));
    npactl_ = std::make_unique<ControlChannel>(UniqueFd(sv[1]));
  }

  Guest& AddGuest(const std::string& name, const std::string& transport, uint16_t nq, bool ready) {
    Guest& g = guests_.Add(guests_.NewId());
    g.name = name;
    g.transport = transport;
    g.queue_pairs = nq;
    auto p = std::make_shared<FakeGuestPort>(nq);
    p->SetReady(ready);
    g.port = p;
    EXPECT_TRUE(g.Move(GuestState::kNegotiating).ok());
    return g;
  }
  // Handles one request; returns the handler's status, the reply in *rep.
  absl::Status Do(const control::AdminRequest& req, control::AdminReply* rep, uint64_t seq = 9,
                  std::vector<UniqueFd> fds = {}) {
    ControlFrame f;
    f.env.set_seq(seq);
    *f.env.mutable_admin_request() = req;
    f.fds = std::move(fds);
    absl::Status st = admin_.Handle(*agent_, f);
    auto r = npactl_->ReceiveBlocking(2000);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_TRUE(r->env.has_admin_reply()) << BodyName(r->env);
      EXPECT_EQ(r->env.seq(), seq);
      *rep = r->env.admin_reply();
    }
    return st;
  }

  GuestRegistry guests_;
  VfAttachments vf_;
  Migrations mig_;  // no connector: no TLS configuration
  AdminService admin_;
  std::unique_ptr<ControlChannel> agent_, npactl_;
};

TEST_F(AdminServiceTest, ListsGuestsWithStateAndPath) {
  Guest& a = AddGuest("g0", "control", 2, true);
  AddGuest("vhost2", "vhost-user-socket", 4, false);
  a.in_dataplane = true;
  control::AdminRequest req;
  req.mutable_list_guests();
  control::AdminReply rep;
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.agent_name(), "admin-agent");
  EXPECT_FALSE(rep.has_error());
  ASSERT_EQ(rep.guests_size(), 2);
  EXPECT_EQ(rep.guests(0).name(), "g0");
  EXPECT_EQ(rep.guests(0).state(), "NEGOTIATING");
  EXPECT_EQ(rep.guests(0).path(), "emulated");
  EXPECT_EQ(rep.guests(0).queue_pairs(), 2u);  // both ready
  EXPECT_TRUE(rep.guests(0).vhost_ready());
  EXPECT_EQ(rep.guests(0).queues_size(), 0);
  EXPECT_EQ(rep.guests(1).path(), "none");
  EXPECT_EQ(rep.guests(1).transport(), "vhost-user-socket");
  EXPECT_FALSE(rep.guests(1).vhost_ready());
}

TEST_F(AdminServiceTest, GuestStatsByNameOrIdAndNotFound) {
  Guest& g = AddGuest("statsguest", "control", 3, true);
  control::AdminRequest req;
  req.mutable_guest_stats()->set_guest("statsguest");
  control::AdminReply rep;
  ASSERT_TRUE(Do(req, &rep).ok());
  ASSERT_EQ(rep.guests_size(), 1);
  EXPECT_EQ(rep.guests(0).queues_size(), 3);
  req.mutable_guest_stats()->set_guest(std::to_string(g.id));
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.guests_size(), 1);
  req.mutable_guest_stats()->set_guest("nosuch");
  ASSERT_TRUE(Do(req, &rep).ok()) << "a wrong name leaves the session open";
  EXPECT_EQ(rep.error().code(), Error::NOT_FOUND);
  control::AdminRequest a;
  a.mutable_agent_stats();
  ASSERT_TRUE(Do(a, &rep).ok());
  EXPECT_EQ(rep.guests_size(), 1);
  EXPECT_FALSE(rep.has_uplink());
}

TEST_F(AdminServiceTest, MalformedRequestsAreRefusedAndCloseTheSession) {
  control::AdminRequest none;  // no op
  control::AdminReply rep;
  EXPECT_FALSE(Do(none, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::MALFORMED);
  EXPECT_NE(rep.error().message().find("no operation"), std::string::npos);
  control::AdminRequest list;
  list.mutable_list_guests();
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::vector<UniqueFd> fds;
  fds.emplace_back(p[0]);
  fds.emplace_back(p[1]);
  EXPECT_FALSE(Do(list, &rep, 3, std::move(fds)).ok());
  EXPECT_EQ(rep.error().code(), Error::MALFORMED);
  EXPECT_NE(rep.error().message().find("carries 2 fds"), std::string::npos);
}

TEST_F(AdminServiceTest, MigrateUnknownGuestIsNotFoundAndWithoutTlsIsRefused) {
  AddGuest("g0", "control", 1, true);
  control::AdminRequest req;
  req.mutable_migrate()->set_guest("nobody");
  req.mutable_migrate()->set_to("127.0.0.1:7000");
  control::AdminReply rep;
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::NOT_FOUND);
  EXPECT_EQ(rep.error().message(), "no guest named or numbered 'nobody'");
  req.mutable_migrate()->set_guest("g0");
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::BUSY);
  EXPECT_NE(rep.error().message().find("no migration TLS configuration"), std::string::npos)
      << rep.error().message();
  EXPECT_EQ(mig_.num_sources(), 0u);
}

TEST_F(AdminServiceTest, VfRequestsWithoutAPoolAreBusyOrNotFound) {
  AddGuest("g0", "control", 1, true);
  control::AdminRequest req;
  req.mutable_vf_attach()->set_guest("g0");
  req.mutable_vf_attach()->set_pci("0000:01:00.0");
  control::AdminReply rep;
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::BUSY);
  EXPECT_EQ(rep.error().message(), "this agent has no VF pool (--vf)");
  req.mutable_vf_attach()->set_guest("nobody");
  ASSERT_TRUE(Do(req, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::NOT_FOUND);
  control::AdminRequest det;
  det.mutable_vf_detach()->set_guest("g0");
  ASSERT_TRUE(Do(det, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::BUSY);
  control::AdminRequest reset;
  reset.mutable_vf_reset()->set_pci("0000:01:00.0");
  ASSERT_TRUE(Do(reset, &rep).ok());
  EXPECT_EQ(rep.error().message(), "this agent has no VF pool (--vf)");
  control::AdminRequest en;
  en.mutable_vf_enable()->set_pf("0000:01:00.0");
  en.mutable_vf_enable()->set_num_vfs(2);
  ASSERT_TRUE(Do(en, &rep).ok());
  EXPECT_EQ(rep.error().code(), Error::BUSY);
}

TEST_F(AdminServiceTest, AnswerOfAParkedRequestCarriesItsSeq) {
  admin_.Answer(*agent_, AdminWaiter{agent_->fd(), 77}, absl::OkStatus(), "accepted VF x");
  auto r = npactl_->ReceiveBlocking(2000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->env.seq(), 77u);
  EXPECT_FALSE(r->env.admin_reply().has_error());
  EXPECT_EQ(r->env.admin_reply().message(), "accepted VF x");
  admin_.Answer(*agent_, AdminWaiter{agent_->fd(), 78}, absl::DeadlineExceededError("too slow"), "");
  r = npactl_->ReceiveBlocking(2000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->env.admin_reply().error().code(), Error::BUSY);
  EXPECT_EQ(r->env.admin_reply().error().message(), "too slow");
  EXPECT_EQ(r->env.admin_reply().message(), "too slow");
}

TEST(AdminServiceCodeTest, CodesSayWhatTheOperatorHasToDo) {
  EXPECT_EQ(AdminService::CodeFor(absl::NotFoundError("")), Error::NOT_FOUND);
  EXPECT_EQ(AdminService::CodeFor(absl::InvalidArgumentError("")), Error::MALFORMED);
  EXPECT_EQ(AdminService::CodeFor(absl::OutOfRangeError("")), Error::MALFORMED);
  EXPECT_EQ(AdminService::CodeFor(absl::FailedPreconditionError("")), Error::BUSY);
  EXPECT_EQ(AdminService::CodeFor(absl::AbortedError("")), Error::BUSY);
  EXPECT_EQ(AdminService::CodeFor(absl::DeadlineExceededError("")), Error::BUSY);
  EXPECT_EQ(AdminService::CodeFor(absl::UnavailableError("")), Error::BUSY);
  EXPECT_EQ(AdminService::CodeFor(absl::InternalError("")), Error::INTERNAL);
}

}  // namespace
}  // namespace npa::agent
