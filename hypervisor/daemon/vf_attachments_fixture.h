// hypervisor/daemon/vf_attachments_fixture.h — the shared fixture of
// vf_attachments_test.cc (the protocol flows) and
// vf_attachments_table_test.cc (the guest table's refusals): a ControlServer
// with a one-VF pool over FakeSysfs + FakeVfioLayer, on its own thread,
// behind a real control socket in a temp dir; the test plays the shell (Hello,
// RegionAnnounce, VfAccept, RevokeDone) and npactl (admin sessions).
// Test-only; not part of npa_agent_core.
#ifndef NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_
#define NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "common/announce.h"
#include "common/clock.h"
#include "common/unix_socket.h"
#include "hypervisor/daemon/control_server.h"
#include "hypervisor/daemon/tap_uplink.h"
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
    vo.adopt_probe_ms = 20;
    vfs_ = std::make_unique<VfManager>(*sys_, vfio_, vo);
    ASSERT_TRUE(vfs_->Init().ok());

    ControlServer::Options o;
    o.control_path = path_;
    o.agent_name = "vf-agent";
    o.housekeeping_ms = 20;
    o.vfs = vfs_.get();
    if (!rarp_gaps_ms_.empty()) o.rarp_gaps_ms = rarp_gaps_ms_;
    if (!roster_.empty()) {  // what a killed agent left (guest_registry.h)
      o.restart_roster_path = dir_ + "/agent.guests";
      std::ofstream(o.restart_roster_path) << roster_;
    }
    PortFactory pf = [this](UniqueFd, const VhostDevice::Options& opts)
        -> absl::StatusOr<std::unique_ptr<GuestPort>> {
      auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
      p->SetReady(ready_);
      return std::unique_ptr<GuestPort>(std::move(p));
    };
    if (with_uplink_) MakeUplink();
    dp_ = std::make_unique<Dataplane>(Dataplane::Options{}, uplink_.get());
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
    uplink_.reset();
    EXPECT_EQ(vfio_.open_attachments(), 0) << "a VFIO attachment leaked";
    vfs_.reset();
    if (!roster_.empty()) unlink((dir_ + "/agent.guests").c_str());
    rmdir(dir_.c_str());
  }

  // with_uplink_: the agent's uplink is a TAP in a network namespace of its
  // own (made by a short-lived thread: a namespace is per thread, and it
  // lives on through the TAP and the packet socket), and wire_ is a packet
  // socket on it that sees what the agent sends there. Nothing to clean up
  // but the two fds: the namespace goes with them.
  void MakeUplink() {
    std::thread([this] {
      if (unshare(CLONE_NEWNET) != 0) return;
      auto up = TapUplink::Create({.name = "npavf%d"});
      if (!up.ok()) return;
      UniqueFd pkt(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
      if (!pkt) return;
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = htons(ETH_P_ALL);
      sll.sll_ifindex = (*up)->ifindex();
      if (bind(pkt.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) return;
      uplink_ = std::move(*up);
      wire_ = std::move(pkt);
    }).join();
    ASSERT_TRUE(uplink_ && wire_) << "TAP uplink in a private network namespace: " << strerror(errno);
  }
  // RARP announcements of `mac` seen on the uplink within timeout_ms (the
  // wait ends early once `want` were seen).
  int CountAnnounces(const std::array<uint8_t, 6>& mac, int want, int timeout_ms) {
    int seen = 0;
    const uint64_t end = MonotonicMs() + static_cast<uint64_t>(timeout_ms);
    uint8_t buf[2048];
    while (seen < want && MonotonicMs() < end) {
      pollfd p{wire_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      ssize_t n = recv(wire_.get(), buf, sizeof buf, MSG_DONTWAIT);
      std::array<uint8_t, 6> got;
      if (n > 0 && ParseRarpAnnounce(std::span<const uint8_t>(buf, static_cast<size_t>(n)), &got) &&
          got == mac)
        seen++;
    }
    return seen;
  }
  // The MAC the agent assigned to guest `name` (npactl guest list).
  std::optional<std::array<uint8_t, 6>> GuestMac(const std::string& name) {
    control::AdminRequest r;
    r.mutable_list_guests();
    auto rep = Admin(r);
    for (const auto& g : rep.guests()) {
      if (g.name() != name) continue;
      std::array<uint8_t, 6> m;
      unsigned v[6];
      if (sscanf(g.mac().c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return std::nullopt;
      for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
      return m;
    }
    return std::nullopt;
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
  bool with_uplink_ = false;  // set in a derived fixture's constructor
  std::vector<uint32_t> rarp_gaps_ms_;  // likewise; empty: the agent's default
  std::string roster_;  // likewise: a restart roster the agent finds at Listen
  std::unique_ptr<TapUplink> uplink_;
  UniqueFd wire_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<ControlServer> srv_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{true};  // new guests' queues come up ready
};

}  // namespace npa::agent::vf_test

#endif  // NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_FIXTURE_H_
