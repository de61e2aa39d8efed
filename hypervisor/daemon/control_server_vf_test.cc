// The VF half of the control protocol end to end over a real control socket:
// a fake shell (this test) speaks Hello / RegionAnnounce / VfAccept /
// RevokeDone, npactl's side is an admin session, VFIO is FakeVfioLayer and
// sysfs is FakeSysfs.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/unix_socket.h"
#include "hypervisor/daemon/control_server.h"
#include "tests/support/fake_guest_port.h"
#include "tests/support/fake_vfio_layer.h"
#include "tests/support/fake_sysfs.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;
using vf::FakeSysfs;

constexpr char kVf[] = "0000:01:00.0";

class ControlServerVfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/npa-ctlvf-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/agent.sock";
    sys_ = FakeSysfs::Create();
    sys_->AddDriver("virtio-pci");
    sys_->AddDriver("vfio-pci");
    FakeSysfs::Fn f;
    f.bdf = kVf;
    f.vendor = 0x1af4;
    f.device = 0x1041;
    f.subsystem_vendor = 0x1af4;
    f.subsystem_device = 0x1100;
    f.class_code = 0x020000;
    f.driver = "virtio-pci";
    f.iommu_group = 3;
    sys_->AddFunction(f);
    VfManager::Options vo;
    vo.pool = {{kVf, ""}};
    vo.bind_wait = absl::Milliseconds(200);
    vfs_ = std::make_unique<VfManager>(*sys_, vfio_, vo);
    ASSERT_TRUE(vfs_->Init().ok());

    ControlServer::Options o;
    o.control_path = path_;
    o.agent_name = "vf-agent";
    o.housekeeping_ms = 20;
    o.vfs = vfs_.get();
    PortFactory pf = [](UniqueFd, const VhostDevice::Options& opts)
        -> absl::StatusOr<std::unique_ptr<GuestPort>> {
      auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
      p->SetReady(true);
      return std::unique_ptr<GuestPort>(std::move(p));
    };
    dp_ = std::make_unique<Dataplane>(Dataplane::Options{}, nullptr);
    ASSERT_TRUE(dp_->Start().ok());
    srv_ = std::make_unique<ControlServer>(o, dp_.get(), pf);
    ASSERT_TRUE(srv_->Listen().ok());
    thread_ = std::thread([this] { ASSERT_TRUE(srv_->Run(&stop_).ok()); });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    srv_.reset();
    dp_.reset();
    EXPECT_EQ(vfio_.open_attachments(), 0) << "a VFIO attachment leaked";
    vfs_.reset();
    rmdir(dir_.c_str());
  }

  ControlChannel Connect() {
    auto s = ConnectUnix(path_, 2000);
    EXPECT_TRUE(s.ok()) << s.status();
    return ControlChannel(std::move(*s));
  }

  // A shell: Hello, Welcome (+fd), LinkState, RegionAnnounce of `regions`
  // 16 KiB memfd regions; then waits until the agent reports it RUNNING.
  ControlChannel Shell(const std::string& name, int regions = 2) {
    ControlChannel ch = Connect();
    Envelope h;
    h.mutable_hello()->set_name(name);
    h.mutable_hello()->set_queue_pairs(1);
    EXPECT_TRUE(ch.Send(h).ok());
    auto w = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(w.ok() && w->env.has_welcome());
    auto l = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(l.ok() && l->env.has_link());
    if (regions > 0) {
      EXPECT_TRUE(Announce(ch, regions).ok());
    }
    for (int i = 0; i < 200 && GuestState(name) != "RUNNING"; i++) usleep(10000);
    EXPECT_EQ(GuestState(name), "RUNNING");
    return ch;
  }
  static absl::Status Announce(ControlChannel& ch, int n, uint64_t overlap = 0) {
    Envelope e;
    std::vector<UniqueFd> fds;
    std::vector<int> raw;
    for (int i = 0; i < n; i++) {
      auto* r = e.mutable_regions()->add_regions();
      r->set_iova(0x10000000ull * (i + 1) - (i ? overlap : 0));
      r->set_size(0x4000);
      fds.emplace_back(memfd_create("shell-region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (ftruncate(fds.back().get(), 0x4000) != 0) return absl::InternalError("ftruncate");
      // As the shell does: the agent requires F_SEAL_SHRINK (guest_regions.h).
      if (fcntl(fds.back().get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        return absl::InternalError("seal");
      raw.push_back(fds.back().get());
    }
    return ch.Send(e, raw);
  }

  control::AdminReply Admin(const control::AdminRequest& req, int timeout_ms = 5000) {
    ControlChannel ch = Connect();
    Envelope e;
    *e.mutable_admin_request() = req;
    EXPECT_TRUE(ch.Send(e).ok());
    auto r = ch.ReceiveBlocking(timeout_ms);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    EXPECT_TRUE(r->env.has_admin_reply()) << BodyName(r->env);
    return r->env.admin_reply();
  }
  // Sends an admin request and returns the channel; the answer comes later.
  ControlChannel AdminAsync(const control::AdminRequest& req) {
    ControlChannel ch = Connect();
    Envelope e;
    *e.mutable_admin_request() = req;
    EXPECT_TRUE(ch.Send(e).ok());
    return ch;
  }
  static control::AdminRequest AttachReq(const std::string& g, const std::string& pci,
                                         uint32_t timeout_ms = 0) {
    control::AdminRequest r;
    r.mutable_vf_attach()->set_guest(g);
    r.mutable_vf_attach()->set_pci(pci);
    r.mutable_vf_attach()->set_timeout_ms(timeout_ms);
    return r;
  }
  static control::AdminRequest DetachReq(const std::string& g, bool force = false,
                                         uint32_t timeout_ms = 0) {
    control::AdminRequest r;
    r.mutable_vf_detach()->set_guest(g);
    r.mutable_vf_detach()->set_force(force);
    r.mutable_vf_detach()->set_timeout_ms(timeout_ms);
    return r;
  }
  std::string GuestField(const std::string& name, bool path) {
    control::AdminRequest r;
    r.mutable_list_guests();
    auto rep = Admin(r);
    for (const auto& g : rep.guests())
      if (g.name() == name) return path ? g.path() : g.state();
    return "";
  }
  std::string GuestState(const std::string& name) { return GuestField(name, false); }
  std::string VfState() {
    control::AdminRequest r;
    r.mutable_vf_list();
    auto rep = Admin(r);
    for (const auto& v : rep.vfs())
      if (v.pci_address() == kVf) return v.state();
    return "?";
  }
  bool WaitVfState(const std::string& want) {
    for (int i = 0; i < 200; i++) {
      if (VfState() == want) return true;
      usleep(10000);
    }
    return false;
  }
  // The fake shell's side of an offer: VfOffer + exactly one fd.
  static uint64_t ExpectOffer(ControlChannel& shell) {
    auto f = shell.ReceiveBlocking(3000);
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return 0;
    EXPECT_TRUE(f->env.has_vf_offer()) << BodyName(f->env);
    const auto& o = f->env.vf_offer();
    EXPECT_EQ(o.pci_address(), kVf);
    EXPECT_EQ(o.vendor(), 0x1af4u);
    EXPECT_EQ(o.device(), 0x1041u);
    EXPECT_EQ(o.subsystem_device(), 0x1100u);
    EXPECT_EQ(o.class_code(), 0x020000u);
    EXPECT_EQ(f->fds.size(), 1u);
    struct stat st;
    EXPECT_EQ(fstat(f->fds[0].get(), &st), 0) << "the device fd must be a live descriptor";
    return o.offer_id();
  }
  static absl::Status Answer(ControlChannel& shell, uint64_t offer, bool accepted,
                             const std::string& reason = "") {
    Envelope e;
    e.mutable_vf_accept()->set_offer_id(offer);
    e.mutable_vf_accept()->set_accepted(accepted);
    e.mutable_vf_accept()->set_plugin(accepted ? "npa_plugin_virtio_net" : "");
    e.mutable_vf_accept()->set_reason(reason);
    return shell.Send(e);
  }
  static control::AdminReply Reply(ControlChannel& admin, int timeout_ms = 5000) {
    auto r = admin.ReceiveBlocking(timeout_ms);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->env.has_admin_reply()) return {};
    return r->env.admin_reply();
  }
  // The guest's session still answers: a StatsRequest gets a StatsReply.
  static void ExpectSessionAlive(ControlChannel& shell) {
    Envelope sr;
    sr.mutable_stats_request();
    ASSERT_TRUE(shell.Send(sr).ok());
    auto s = shell.ReceiveBlocking(2000);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(s->env.has_stats_reply()) << BodyName(s->env);
  }
  // Attach and accept; returns the offer id.
  uint64_t AttachAccepted(ControlChannel& shell, const std::string& g) {
    ControlChannel admin = AdminAsync(AttachReq(g, kVf));
    uint64_t id = ExpectOffer(shell);
    EXPECT_TRUE(Answer(shell, id, true).ok());
    auto rep = Reply(admin);
    EXPECT_FALSE(rep.has_error()) << rep.error().message();
    EXPECT_NE(rep.message().find("accepted"), std::string::npos) << rep.message();
    return id;
  }

  std::string dir_, path_;
  std::unique_ptr<FakeSysfs> sys_;
  FakeVfioLayer vfio_;
  std::unique_ptr<VfManager> vfs_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<ControlServer> srv_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

TEST_F(ControlServerVfTest, OfferAcceptRevokeDone) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  EXPECT_EQ(GuestState("g0"), "VF_ACTIVE");
  EXPECT_EQ(GuestField("g0", true), "vf");
  EXPECT_EQ(VfState(), "ACTIVE");
  EXPECT_EQ(vfio_.Count("map"), 2);

  ControlChannel admin = AdminAsync(DetachReq("g0"));
  auto rv = shell.ReceiveBlocking(3000);
  ASSERT_TRUE(rv.ok()) << rv.status();
  ASSERT_TRUE(rv->env.has_revoke()) << BodyName(rv->env);
  EXPECT_EQ(rv->env.revoke().offer_id(), id);
  EXPECT_EQ(rv->env.revoke().timeout_ms(), 5000u);
  EXPECT_EQ(GuestState("g0"), "REVOKING");
  EXPECT_EQ(vfio_.Count("reset"), 1) << "no reset before the guest has quiesced";
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  done.mutable_revoke_done()->set_tx_inflight_lost(0);
  ASSERT_TRUE(shell.Send(done).ok());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("tx_inflight_lost=0"), std::string::npos) << rep.message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  EXPECT_EQ(VfState(), "FREE");
  EXPECT_EQ(vfio_.Count("reset"), 2);
  EXPECT_EQ(vfio_.Count("unmap"), 2);
  EXPECT_EQ(vfio_.open_attachments(), 0);
  // And again: a second attach of the same VF works.
  AttachAccepted(shell, "g0");
}

TEST_F(ControlServerVfTest, DeclinedOfferIsTornDownAndReasonReported) {
  ControlChannel shell = Shell("g0");
  ControlChannel admin = AdminAsync(AttachReq("g0", kVf));
  uint64_t id = ExpectOffer(shell);
  ASSERT_TRUE(Answer(shell, id, false, "no plug-in claims 1af4:1041").ok());
  auto rep = Reply(admin);
  ASSERT_TRUE(rep.has_error());
  EXPECT_EQ(rep.error().code(), Error::BUSY);
  EXPECT_NE(rep.error().message().find("no plug-in claims"), std::string::npos) << rep.error().message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  EXPECT_EQ(VfState(), "FREE");
  EXPECT_EQ(vfio_.open_attachments(), 0);
}

TEST_F(ControlServerVfTest, UnansweredOfferTimesOutAndLateAnswerIsIgnored) {
  ControlChannel shell = Shell("g0");
  ControlChannel admin = AdminAsync(AttachReq("g0", kVf, 150));
  uint64_t id = ExpectOffer(shell);
  auto rep = Reply(admin);
  ASSERT_TRUE(rep.has_error());
  EXPECT_NE(rep.error().message().find("did not answer"), std::string::npos) << rep.error().message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();  // after the forced unbind
  // The late VfAccept is ignored, not a protocol error: the session lives on.
  ASSERT_TRUE(Answer(shell, id, true).ok());
  ExpectSessionAlive(shell);
}

TEST_F(ControlServerVfTest, UnansweredRevokeIsForced) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  ControlChannel admin = AdminAsync(DetachReq("g0", false, 150));
  auto rv = shell.ReceiveBlocking(3000);
  ASSERT_TRUE(rv.ok() && rv->env.has_revoke());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("forced"), std::string::npos) << rep.message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  ASSERT_TRUE(WaitVfState("FREE"));
  bool unbound = false;
  for (const auto& w : sys_->write_log) unbound |= w.find("driver/unbind") != std::string::npos;
  EXPECT_TRUE(unbound);
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  ASSERT_TRUE(shell.Send(done).ok());  // late: ignored
  EXPECT_EQ(GuestState("g0"), "RUNNING");
}

// --force asks through the device (VFIO REQ), not the control protocol, and
// resets only after the guest has let go: what the VF held is accounted.
TEST_F(ControlServerVfTest, ForcedDetachRaisesReqAndResetsAfterTheGuestLetsGo) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  ASSERT_EQ(vfio_.Count("reset"), 1);  // the attach's
  ControlChannel admin = AdminAsync(DetachReq("g0", /*force=*/true));
  for (int i = 0; i < 200 && vfio_.Count("req") == 0; i++) usleep(5000);
  ASSERT_EQ(vfio_.Count("req"), 1);
  // No control message to the shell, and no reset while the guest holds it.
  EXPECT_TRUE(absl::IsDeadlineExceeded(shell.ReceiveBlocking(100).status()));
  EXPECT_EQ(vfio_.Count("reset"), 1);
  EXPECT_EQ(GuestState("g0"), "REVOKING");
  EXPECT_EQ(VfState(), "REVOKING");
  Envelope done;  // what the shell sends after its REQ fallback
  done.mutable_revoke_done()->set_offer_id(id);
  done.mutable_revoke_done()->set_tx_inflight_lost(3);
  done.mutable_revoke_done()->set_reason("the agent took the VF back (VFIO REQ)");
  ASSERT_TRUE(shell.Send(done).ok());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("forcibly detached"), std::string::npos) << rep.message();
  EXPECT_NE(rep.message().find("after VFIO REQ, tx_inflight_lost=3"), std::string::npos) << rep.message();
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  EXPECT_EQ(vfio_.Count("reset"), 2);
  // The log order is the point: REQ, then (after RevokeDone) reset.
  auto log = vfio_.Log();
  size_t req = log.size(), reset_after = log.size();
  for (size_t i = 0; i < log.size(); i++) {
    if (log[i].rfind("req", 0) == 0 && req == log.size()) req = i;
    if (log[i].rfind("reset", 0) == 0 && i > req && reset_after == log.size()) reset_after = i;
  }
  ASSERT_LT(req, log.size());
  EXPECT_LT(reset_after, log.size()) << "no reset after the REQ";
  bool unbound = false;
  for (const auto& w : sys_->write_log) unbound |= w.find("driver/unbind") != std::string::npos;
  EXPECT_TRUE(unbound) << "a forced detach still unbinds the function";
}

TEST_F(ControlServerVfTest, ForcedDetachWithoutReqChannelTakesTheVfAtOnce) {
  ControlChannel shell = Shell("g0");
  AttachAccepted(shell, "g0");
  vfio_.faults.req = true;  // the guest wired no REQ eventfd
  auto rep = Admin(DetachReq("g0", /*force=*/true));
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("without asking it"), std::string::npos) << rep.message();
  EXPECT_NE(rep.message().find("no VFIO REQ eventfd"), std::string::npos) << rep.message();
  EXPECT_NE(rep.message().find("lost uncounted"), std::string::npos) << rep.message();
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(vfio_.Count("reset"), 2);
  EXPECT_TRUE(absl::IsDeadlineExceeded(shell.ReceiveBlocking(100).status()));
}

TEST_F(ControlServerVfTest, ForcedDetachGraceExpires) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  auto rep = Admin(DetachReq("g0", /*force=*/true, /*timeout_ms=*/150));
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_NE(rep.message().find("did not answer VFIO REQ"), std::string::npos) << rep.message();
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  ASSERT_TRUE(shell.Send(done).ok());  // late: ignored, the session lives on
  ExpectSessionAlive(shell);
}

// The shell gave the VF up by itself (VFIO ERR, or npa_shell_stop): an
// unsolicited RevokeDone returns it to the pool and keeps the session.
TEST_F(ControlServerVfTest, UnsolicitedRevokeDoneReleasesTheVf) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  done.mutable_revoke_done()->set_reason(std::string("the VF failed (VFIO ERR)\n") + std::string(500, 'x'));
  ASSERT_TRUE(shell.Send(done).ok());
  ASSERT_TRUE(WaitVfState("FREE"));
  EXPECT_EQ(GuestState("g0"), "RUNNING");
  EXPECT_EQ(vfio_.Count("reset"), 2);
  ExpectSessionAlive(shell);
  // A second one for the same (now stale) offer is ignored.
  ASSERT_TRUE(shell.Send(done).ok());
  ExpectSessionAlive(shell);
  // And one for an offer that never existed is still an error.
  done.mutable_revoke_done()->set_offer_id(id + 77);
  ASSERT_TRUE(shell.Send(done).ok());
  auto e = shell.ReceiveBlocking(2000);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->env.has_error()) << BodyName(e->env);
}

TEST_F(ControlServerVfTest, AdminErrors) {
  ControlChannel shell = Shell("g0", /*regions=*/0);
  auto r = Admin(AttachReq("g0", kVf));
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("no memory regions"), std::string::npos) << r.error().message();
  r = Admin(AttachReq("nobody", kVf));
  EXPECT_EQ(r.error().code(), Error::NOT_FOUND);
  ASSERT_TRUE(Announce(shell, 1).ok());
  r = Admin(AttachReq("g0", "0000:09:00.0"));
  EXPECT_EQ(r.error().code(), Error::NOT_FOUND) << r.error().message();
  r = Admin(DetachReq("g0"));
  EXPECT_NE(r.error().message().find("holds no VF"), std::string::npos);
  AttachAccepted(shell, "g0");
  control::AdminRequest reset;
  reset.mutable_vf_reset()->set_pci(kVf);
  r = Admin(reset);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("detach it first"), std::string::npos) << r.error().message();
  r = Admin(AttachReq("g0", kVf));
  EXPECT_NE(r.error().message().find("already holds"), std::string::npos) << r.error().message();
  ASSERT_FALSE(Admin(DetachReq("g0", true)).has_error());
  ASSERT_TRUE(WaitVfState("FREE"));
  r = Admin(reset);
  EXPECT_FALSE(r.has_error()) << r.error().message();
}

TEST_F(ControlServerVfTest, HostileRegionAnnouncesCloseTheSession) {
  {
    ControlChannel shell = Shell("g0", 0);
    ASSERT_TRUE(Announce(shell, 2, /*overlap=*/0x10000000 - 0x2000).ok());
    auto e = shell.ReceiveBlocking(2000);
    ASSERT_TRUE(e.ok() && e->env.has_error()) << e.status();
    EXPECT_EQ(e->env.error().code(), Error::MALFORMED);
    EXPECT_NE(e->env.error().message().find("overlap"), std::string::npos);
  }
  {
    ControlChannel shell = Shell("g1", 0);
    Envelope env;
    auto* r = env.mutable_regions()->add_regions();
    r->set_iova(0x100000);
    r->set_size(0x1000);
    ASSERT_TRUE(shell.Send(env).ok());  // no fd
    auto e = shell.ReceiveBlocking(2000);
    ASSERT_TRUE(e.ok() && e->env.has_error());
    EXPECT_EQ(e->env.error().code(), Error::FD_MISMATCH);
  }
  {
    ControlChannel shell = Shell("g2", 0);
    Envelope env;
    auto* r = env.mutable_regions()->add_regions();
    r->set_iova(0x100000);
    r->set_size(1ull << 40);  // far beyond the 4 KiB file
    UniqueFd m(memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_EQ(ftruncate(m.get(), 4096), 0);
    ASSERT_EQ(fcntl(m.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    int fd = m.get();
    ASSERT_TRUE(shell.Send(env, std::span<const int>(&fd, 1)).ok());
    auto e = shell.ReceiveBlocking(2000);
    ASSERT_TRUE(e.ok() && e->env.has_error());
    EXPECT_EQ(e->env.error().code(), Error::MALFORMED);
    EXPECT_NE(e->env.error().message().find("exceeds the file"), std::string::npos);
  }
  // A stray VfAccept is UNEXPECTED.
  ControlChannel shell = Shell("g3");
  ASSERT_TRUE(Answer(shell, 12345, true).ok());
  auto e = shell.ReceiveBlocking(2000);
  ASSERT_TRUE(e.ok() && e->env.has_error());
  EXPECT_EQ(e->env.error().code(), Error::UNEXPECTED);
}

TEST_F(ControlServerVfTest, GuestThatLeavesReleasesItsVf) {
  {
    ControlChannel shell = Shell("g0");
    AttachAccepted(shell, "g0");
  }  // the shell's socket closes
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();
  EXPECT_EQ(vfio_.Count("reset"), 2);
  EXPECT_EQ(vfio_.open_attachments(), 0);
}

TEST_F(ControlServerVfTest, ListJsonFieldsComeFromInventory) {
  control::AdminRequest r;
  r.mutable_vf_list();
  auto rep = Admin(r);
  ASSERT_EQ(rep.vfs_size(), 1);
  const auto& v = rep.vfs(0);
  EXPECT_EQ(v.pci_address(), kVf);
  EXPECT_EQ(v.iommu_group(), 3);
  EXPECT_TRUE(v.in_pool());
  EXPECT_EQ(v.state(), "FREE");
  EXPECT_EQ(v.driver(), "virtio-pci");
}

}  // namespace
}  // namespace npa::agent
