// VfAttachments (the VF half of the control protocol) end to end over a real
// control socket, through the ControlServer that wires it: a fake shell (this
// test) speaks Hello / RegionAnnounce / VfAccept / RevokeDone, npactl's side
// is an admin session, VFIO is FakeVfioLayer and sysfs is FakeSysfs
// (vf_attachments_fixture.h). The guest table's refusals are in
// vf_attachments_table_test.cc.
#include "hypervisor/daemon/vf_attachments_fixture.h"

namespace npa::agent::vf_test {
namespace {

TEST_F(VfAttachmentsTest, OfferAcceptRevokeDone) {
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

// The lifecycle events (agent_events.h) of one attach and planned revoke, in
// the order the tables decided them, and as `npactl events` gets them.
TEST_F(VfAttachmentsTest, AttachAndRevokePublishTheirEventsInOrder) {
  ControlChannel shell = Shell("g0");
  uint64_t id = AttachAccepted(shell, "g0");
  ControlChannel admin = AdminAsync(DetachReq("g0"));
  auto rv = shell.ReceiveBlocking(3000);
  ASSERT_TRUE(rv.ok()) << rv.status();
  ASSERT_TRUE(rv->env.has_revoke()) << BodyName(rv->env);
  usleep(2000);  // a revoke that takes time: its duration is measured
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  ASSERT_TRUE(shell.Send(done).ok());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();

  std::vector<std::string> kinds;
  uint64_t revoke_ns = 0, last_seq = 0;
  for (const AgentEvent& e : srv_->events().Recent()) {
    EXPECT_GT(e.seq, last_seq);
    last_seq = e.seq;
    if (e.guest != "g0") continue;
    kinds.push_back(EventKindName(e.kind));
    if (e.kind != EventKind::kGuestUp) {
      EXPECT_EQ(e.vf, kVf) << EventKindName(e.kind);
    }
    if (e.kind == EventKind::kRevokeBegin) {
      EXPECT_EQ(e.detail, "planned");
    }
    if (e.kind == EventKind::kRevokeDone) revoke_ns = e.duration_ns;
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"guest_up", "vf_reset", "vf_attach", "vf_accept",
                                             "revoke_begin", "revoke_done", "vf_reset",
                                             "vf_released", "fallback"}));
  EXPECT_GE(revoke_ns, 2000000u) << "revoke_done carries the time since revoke_begin";

  control::AdminRequest req;
  req.mutable_events();
  control::AdminReply r = Admin(req);
  EXPECT_FALSE(r.has_error()) << r.error().message();
  std::vector<std::string> got;
  for (const auto& e : r.events())
    if (e.guest() == "g0") got.push_back(e.kind());
  EXPECT_EQ(got, kinds);
  EXPECT_EQ(r.events(r.events_size() - 1).vf(), kVf);
}

TEST_F(VfAttachmentsTest, DeclinedOfferIsTornDownAndReasonReported) {
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

TEST_F(VfAttachmentsTest, UnansweredOfferTimesOutAndLateAnswerIsIgnored) {
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

TEST_F(VfAttachmentsTest, UnansweredRevokeIsForced) {
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
TEST_F(VfAttachmentsTest, ForcedDetachRaisesReqAndResetsAfterTheGuestLetsGo) {
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

TEST_F(VfAttachmentsTest, ForcedDetachWithoutReqChannelTakesTheVfAtOnce) {
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

TEST_F(VfAttachmentsTest, ForcedDetachGraceExpires) {
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
TEST_F(VfAttachmentsTest, UnsolicitedRevokeDoneReleasesTheVf) {
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

TEST_F(VfAttachmentsTest, AdminErrors) {
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

TEST_F(VfAttachmentsTest, HostileRegionAnnouncesCloseTheSession) {
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
    r->set_size(1ull << 20);  // beyond the 4 KiB file, inside max_guest_memory
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

TEST_F(VfAttachmentsTest, GuestThatLeavesReleasesItsVf) {
  {
    ControlChannel shell = Shell("g0");
    AttachAccepted(shell, "g0");
  }  // the shell's socket closes
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();
  EXPECT_EQ(vfio_.Count("reset"), 2);
  EXPECT_EQ(vfio_.open_attachments(), 0);
}

TEST_F(VfAttachmentsTest, ListJsonFieldsComeFromInventory) {
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
TEST_F(VfAttachmentsTest, RegionAnnouncesOverTheGuestBoundsAreLimit) {
  {  // more memory than max_guest_memory (4 GiB by default): LIMIT, nothing mapped
    ControlChannel shell = Shell("big", 0);
    Envelope env;
    std::vector<int> raw;
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 2; i++) {
      auto* r = env.mutable_regions()->add_regions();
      r->set_iova(0x100000000000ull * (i + 1));
      r->set_size(3ull << 30);  // 6 GiB in all
      fds.emplace_back(memfd_create("big", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      raw.push_back(fds.back().get());
    }
    ASSERT_TRUE(shell.Send(env, raw).ok());
    ExpectErrorThenClose(shell, Error::LIMIT, "max_guest_memory");
  }
  {  // a FUSE/NFS/pipe stand-in: an fd that is no memfd is refused before any fstat
    ControlChannel shell = Shell("pipe", 0);
    Envelope env;
    auto* r = env.mutable_regions()->add_regions();
    r->set_iova(0x100000);
    r->set_size(0x1000);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_TRUE(shell.Send(env, std::span<const int>(p, 1)).ok());
    close(p[0]);
    close(p[1]);
    ExpectErrorThenClose(shell, Error::MALFORMED, "not a memfd, hugetlbfs or tmpfs");
  }
  ControlChannel ok = Shell("fine", 2);  // the default shell's announce passes
  ExpectSessionAlive(ok);
}

TEST(RegionChecks, BoundsAndFdTypes) {
  control::RegionAnnounce a;
  for (int i = 0; i < 3; i++) a.add_regions()->set_size(1ull << 30);
  EXPECT_TRUE(CheckRegionBounds(a, 8, 3ull << 30).ok());
  absl::Status s = CheckRegionBounds(a, 2, 4ull << 30);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_NE(s.message().find("3 regions; at most 2"), absl::string_view::npos) << s;
  s = CheckRegionBounds(a, 8, (3ull << 30) - 1);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  a.add_regions()->set_size(~0ull - (1ull << 29));  // would wrap a naive sum
  EXPECT_TRUE(absl::IsResourceExhausted(CheckRegionBounds(a, 8, ~0ull >> 1)));

  UniqueFd m(memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(CheckRegionFdType(m.get(), 0).ok());
  UniqueFd unsealable(memfd_create("u", MFD_CLOEXEC));  // still shmem: type is fine
  EXPECT_TRUE(CheckRegionFdType(unsealable.get(), 0).ok());
  char path[] = "/var/tmp/npa-region-XXXXXX";  // a disk file
  UniqueFd disk(mkstemp(path));
  ASSERT_TRUE(disk.valid());
  unlink(path);
  s = CheckRegionFdType(disk.get(), 3);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("region 3"), absl::string_view::npos) << s;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  EXPECT_FALSE(CheckRegionFdType(p[0], 0).ok());
  close(p[0]);
  close(p[1]);
}

// ---- the uplink announces the guest's MAC once its VF falls back (issue 8:
// a learning switch must stop sending the guest's frames to the VF's port).

class VfAttachmentsUplinkTest : public VfAttachmentsTest {
 protected:
  VfAttachmentsUplinkTest() { with_uplink_ = true; }
};

// A planned revoke: as soon as the agent sends Revoke (the shell reads its
// emulated ring throughout the switch), and again once RevokeDone is in, the
// uplink carries a RARP with the guest's MAC as source at once, then one per
// gap of the agent's RARP schedule (the one after a migration: 50, 100,
// 200, 400 ms); then nothing more.
TEST_F(VfAttachmentsUplinkTest, PlannedRevokeAnnouncesTheMacOnTheUplink) {
  ControlChannel shell = Shell("g0");
  auto mac = GuestMac("g0");
  ASSERT_TRUE(mac.has_value());
  uint64_t id = AttachAccepted(shell, "g0");
  // On the VF the shell announces through the VF itself: not the uplink.
  EXPECT_EQ(CountAnnounces(*mac, 1, 300), 0);
  ControlChannel admin = AdminAsync(DetachReq("g0"));
  auto rv = shell.ReceiveBlocking(3000);
  ASSERT_TRUE(rv.ok() && rv->env.has_revoke());
  EXPECT_EQ(CountAnnounces(*mac, 5, 10000), 5) << "from the Revoke: one at once and four on schedule";
  Envelope done;
  done.mutable_revoke_done()->set_offer_id(id);
  ASSERT_TRUE(shell.Send(done).ok());
  auto rep = Reply(admin);
  EXPECT_FALSE(rep.has_error()) << rep.error().message();
  EXPECT_EQ(CountAnnounces(*mac, 5, 10000), 5) << "from the release: one at once and four on schedule";
  EXPECT_EQ(CountAnnounces(*mac, 1, 1500), 0) << "each schedule has five";
}

// The shell's own fallback (unsolicited RevokeDone) announces as well; a VF
// accepted again stops what is left of the schedule (a late RARP would pull
// the switch back to the uplink), and a guest that closes announces nothing.
TEST_F(VfAttachmentsUplinkTest, FallbackAnnouncesReattachCancelsCloseIsSilent) {
  // The uplink test fixture's agent, with a schedule whose last RARP comes
  // long after the re-attach below.
  stop_ = true;
  thread_.join();
  srv_.reset();
  stop_ = false;
  ControlServer::Options o;
  o.control_path = path_;
  o.agent_name = "vf-agent";
  o.housekeeping_ms = 20;
  o.vfs = vfs_.get();
  o.rarp_gaps_ms = {50, 4000};
  srv_ = std::make_unique<ControlServer>(o, dp_.get(), [this](UniqueFd, const VhostDevice::Options& opts)
      -> absl::StatusOr<std::unique_ptr<GuestPort>> {
    auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
    p->SetReady(ready_);
    return std::unique_ptr<GuestPort>(std::move(p));
  });
  ASSERT_TRUE(srv_->Listen().ok());
  thread_ = std::thread([this] { ASSERT_TRUE(srv_->Run(&stop_).ok()); });

  std::optional<std::array<uint8_t, 6>> mac;
  {
    ControlChannel shell = Shell("g0");
    mac = GuestMac("g0");
    ASSERT_TRUE(mac.has_value());
    uint64_t id = AttachAccepted(shell, "g0");
    Envelope done;
    done.mutable_revoke_done()->set_offer_id(id);
    done.mutable_revoke_done()->set_reason("the VF failed (VFIO ERR)");
    ASSERT_TRUE(shell.Send(done).ok());
    EXPECT_EQ(CountAnnounces(*mac, 2, 5000), 2) << "at once and after 50 ms";
    ASSERT_TRUE(WaitVfState("FREE"));
    AttachAccepted(shell, "g0");
    // The third RARP was due 4050 ms after the fallback: cancelled.
    EXPECT_EQ(CountAnnounces(*mac, 1, 4500), 0);
  }  // the shell's socket closes while on the VF
  ASSERT_TRUE(WaitVfState("FREE")) << VfState();
  EXPECT_EQ(CountAnnounces(*mac, 1, 500), 0) << "a guest that left is not announced";
}

}  // namespace npa::agent::vf_test
