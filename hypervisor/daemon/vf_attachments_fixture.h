// hypervisor/daemon/vf_attachments_fixture.h — the shared fixture of
// vf_attachments_test.cc (the protocol flows) and
// vf_attachments_table_test.cc (the guest table's refusals): a ControlServer
// with a one-VF pool over FakeSysfs + FakeVfioLayer, on its own thread,
// behind a real control socket in a temp dir; the test plays the shell (Hello,
// RegionAnnounce, VfAccept, RevokeDone) and npactl (admin sessions).
// Test-only; not part of npa_agent_core.
#ifndef NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_
#define NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "common/unix_socket.h"
#include "hypervisor/daemon/control_server.h"
#include "tests/support/fake_guest_port.h"
#include "tests/support/fake_sysfs.h"
#include "tests/support/fake_vfio_layer.h"

namespace npa::agent::vf_test {

using control::Envelope;
using control::Error;
using vf::FakeSysfs;

constexpr char kVf[] = "0000:01:00.0";

class VfAttachmentsTest : public ::testing::Test {
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
    PortFactory pf = [this](UniqueFd, const VhostDevice::Options& opts)
        -> absl::StatusOr<std::unique_ptr<GuestPort>> {
      auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
      p->SetReady(ready_);
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

  // A guest's session: the control socket.
  ControlChannel Connect() { return ConnectTo(path_); }
  // npactl's session: the admin socket beside it (operator requests are
  // refused on the control socket).
  ControlChannel ConnectAdmin() { return ConnectTo(path_ + ".admin"); }
  ControlChannel ConnectTo(const std::string& path) {
    auto s = ConnectUnix(path, 2000);
    EXPECT_TRUE(s.ok()) << s.status();
    return ControlChannel(std::move(*s));
  }

  // A shell: Hello, Welcome (+fd), LinkState, RegionAnnounce of `regions`
  // 16 KiB memfd regions; then waits until the agent reports it RUNNING.
  ControlChannel Shell(const std::string& name, int regions = 2) {
    ControlChannel ch = HelloOnly(name, regions);
    for (int i = 0; i < 200 && GuestState(name) != "RUNNING"; i++) usleep(10000);
    EXPECT_EQ(GuestState(name), "RUNNING");
    return ch;
  }
  // The same without waiting for RUNNING.
  ControlChannel HelloOnly(const std::string& name, int regions) {
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
    return ch;
  }
  // The agent refused a guest message: Error{code} naming `needle`, then
  // (perhaps after a Bye) the session closes.
  static void ExpectErrorThenClose(ControlChannel& shell, Error::Code code,
                                   const std::string& needle) {
    auto e = shell.ReceiveBlocking(2000);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(e->env.has_error()) << BodyName(e->env);
    EXPECT_EQ(e->env.error().code(), code) << e->env.error().message();
    EXPECT_NE(e->env.error().message().find(needle), std::string::npos) << e->env.error().message();
    auto eof = shell.ReceiveBlocking(2000);
    if (eof.ok() && eof->env.has_bye()) eof = shell.ReceiveBlocking(2000);
    EXPECT_TRUE(absl::IsAborted(eof.status())) << eof.status();
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
    ControlChannel ch = ConnectAdmin();
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
    ControlChannel ch = ConnectAdmin();
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
  std::atomic<bool> ready_{true};  // new guests' queues come up ready
};

}  // namespace npa::agent::vf_test

#endif  // NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_
