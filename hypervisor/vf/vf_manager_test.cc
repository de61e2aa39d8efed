#include "hypervisor/vf/vf_manager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/support/fake_vfio_layer.h"
#include "tests/support/fake_sysfs.h"

namespace npa::agent {
namespace {

using vf::FakeSysfs;

constexpr char kVirtio[] = "0000:01:00.0";
constexpr char kE1000e[] = "0000:02:00.0";
constexpr char kNvmePf[] = "0000:05:00.0";

class VfManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sys_ = FakeSysfs::Create();
    ASSERT_NE(sys_, nullptr);
    sys_->AddDriver("virtio-pci");
    sys_->AddDriver("e1000e");
    sys_->AddDriver("vfio-pci");
    sys_->AddDriver("nvme");
    FakeSysfs::Fn v;
    v.bdf = kVirtio;
    v.vendor = 0x1af4;
    v.device = 0x1041;
    v.subsystem_vendor = 0x1af4;
    v.subsystem_device = 0x1100;
    v.class_code = 0x020000;
    v.driver = "virtio-pci";
    v.iommu_group = 3;
    v.reset_method = "flr bus";
    sys_->AddFunction(v);
    FakeSysfs::Fn e = v;
    e.bdf = kE1000e;
    e.vendor = 0x8086;
    e.device = 0x10d3;
    e.subsystem_vendor = 0x8086;
    e.subsystem_device = 0x0000;
    e.driver = "e1000e";
    e.iommu_group = 4;
    e.reset_method = "pm bus";
    sys_->AddFunction(e);
    FakeSysfs::Fn n;
    n.bdf = kNvmePf;
    n.vendor = 0x1b36;
    n.device = 0x0010;
    n.class_code = 0x010802;
    n.driver = "nvme";
    n.iommu_group = 9;
    n.sriov_totalvfs = 2;
    n.vf_device = 0x0010;
    sys_->AddFunction(n);
    regions_ = MakeRegions(2);
  }

  VfManager::Options Pool(bool restore = false) {
    VfManager::Options o;
    o.pool = {{kVirtio, ""}, {kE1000e, ""}};
    o.restore_driver = restore;
    o.bind_wait = absl::Milliseconds(200);
    return o;
  }

  static GuestRegions MakeRegions(int n) {
    control::RegionAnnounce a;
    std::vector<UniqueFd> fds;
    for (int i = 0; i < n; i++) {
      auto* r = a.add_regions();
      r->set_iova(0x100000ull * (i + 1));
      r->set_size(0x4000);
      fds.emplace_back(memfd_create("r", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      EXPECT_EQ(ftruncate(fds.back().get(), 0x4000), 0);
      // FromAnnounce requires the shrink seal (guest_regions.h).
      EXPECT_EQ(fcntl(fds.back().get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    }
    auto g = GuestRegions::FromAnnounce(a, fds);
    EXPECT_TRUE(g.ok()) << g.status();
    return std::move(*g);
  }

  std::string Driver(const std::string& bdf) {
    auto l = sys_->ReadLink("bus/pci/devices/" + bdf + "/driver");
    return l.ok() ? vf::Basename(*l) : "";
  }

  std::unique_ptr<FakeSysfs> sys_;
  FakeVfioLayer vfio_;
  GuestRegions regions_;
};

TEST_F(VfManagerTest, InitRejectsUnknownDuplicateAndGrouplessEntries) {
  {
    VfManager m(*sys_, vfio_, {.pool = {{"0000:09:00.0", ""}}});
    EXPECT_TRUE(absl::IsNotFound(m.Init()));
  }
  {
    VfManager m(*sys_, vfio_, {.pool = {{kVirtio, ""}, {"0000:01:00.0", ""}}});
    absl::Status s = m.Init();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  }
  {
    VfManager m(*sys_, vfio_, {.pool = {{"../../etc", ""}}});
    EXPECT_FALSE(m.Init().ok());
  }
  FakeSysfs::Fn x;
  x.bdf = "0000:07:00.0";
  x.class_code = 0x020000;
  sys_->AddFunction(x);  // no iommu_group
  VfManager m(*sys_, vfio_, {.pool = {{"0000:07:00.0", ""}}});
  absl::Status s = m.Init();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("IOMMU"), absl::string_view::npos);
}

TEST_F(VfManagerTest, ParseVfPoolArg) {
  auto e = ParseVfPoolArg("0000:02:00.0,reset=bus");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->bdf, "0000:02:00.0");
  EXPECT_EQ(e->reset_method, "bus");
  EXPECT_FALSE(ParseVfPoolArg("0000:02:00.0,colour=red").ok());
  EXPECT_FALSE(ParseVfPoolArg("02:00.0").ok());
  EXPECT_FALSE(ParseVfPoolArg("").ok());
}

TEST_F(VfManagerTest, AttachAcceptRevokeSequence) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kVirtio, 11, "g0", regions_);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->msg.pci_address(), kVirtio);
  EXPECT_EQ(o->msg.vendor(), 0x1af4u);
  EXPECT_EQ(o->msg.device(), 0x1041u);
  EXPECT_EQ(o->msg.subsystem_device(), 0x1100u);
  EXPECT_EQ(o->msg.class_code(), 0x020000u);
  EXPECT_NE(o->msg.offer_id(), 0u);
  EXPECT_TRUE(o->device_fd.valid());
  EXPECT_EQ(Driver(kVirtio), "vfio-pci");
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kOffered);
  EXPECT_EQ(m.OfferOfGuest(11), o->msg.offer_id());
  // bind -> open -> map every region -> reset -> dup, in that order.
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"open 0000:01:00.0", "map 0x100000 0x4000",
                                                   "map 0x200000 0x4000", "reset 0000:01:00.0",
                                                   "dup 0000:01:00.0"}));
  // FLR available: reset_method left alone.
  for (const auto& w : sys_->write_log) EXPECT_EQ(w.find("reset_method"), std::string::npos) << w;

  uint64_t id = o->msg.offer_id();
  ASSERT_TRUE(m.Accepted(id).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kActive);
  // Second attach of the same VF: not free.
  auto again = m.Attach(kVirtio, 12, "g1", regions_);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status()));
  EXPECT_NE(again.status().message().find("held by guest 'g0'"), absl::string_view::npos);
  // Reset while attached: "detach it first".
  absl::Status rs = m.ResetVf(kVirtio);
  EXPECT_TRUE(absl::IsFailedPrecondition(rs));
  EXPECT_NE(rs.message().find("detach it first"), absl::string_view::npos) << rs;

  ASSERT_TRUE(m.BeginRevoke(id).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kRevoking);
  vfio_.Clear();
  ASSERT_TRUE(m.Release(id, "RevokeDone", false).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
  // Reset (FLR) first, then unmap, then close.
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"reset 0000:01:00.0", "unmap 0x100000 0x4000",
                                                   "unmap 0x200000 0x4000", "close 0000:01:00.0"}));
  EXPECT_EQ(vfio_.open_attachments(), 0);
  EXPECT_FALSE(m.OfferOfGuest(11).has_value());
  EXPECT_EQ(Driver(kVirtio), "vfio-pci") << "stays on vfio-pci unless restore_driver";
  // And it can be attached again, with a new offer id.
  auto o2 = m.Attach(kVirtio, 12, "g1", regions_);
  ASSERT_TRUE(o2.ok()) << o2.status();
  EXPECT_NE(o2->msg.offer_id(), id);
  // VFIO REQ only for an ACTIVE VF; it moves it to REVOKING and resets nothing.
  const uint64_t id2 = o2->msg.offer_id();
  EXPECT_TRUE(absl::IsFailedPrecondition(m.RequestRelease(id2)));  // OFFERED
  EXPECT_TRUE(absl::IsNotFound(m.RequestRelease(id)));             // stale offer
  ASSERT_TRUE(m.Accepted(id2).ok());
  vfio_.faults.req = true;
  absl::Status rq = m.RequestRelease(id2);
  EXPECT_TRUE(absl::IsFailedPrecondition(rq)) << rq;
  EXPECT_NE(rq.message().find("VFIO REQ"), absl::string_view::npos) << rq;
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kActive) << "a failed REQ changes nothing";
  vfio_.faults.req = false;
  vfio_.Clear();
  ASSERT_TRUE(m.RequestRelease(id2).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kRevoking);
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"req 0000:01:00.0"}));
  ASSERT_TRUE(m.Release(id2, "RevokeDone after REQ", false).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
}

TEST_F(VfManagerTest, E1000eWithoutFlrGetsBusReset) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kE1000e, 1, "g0", regions_);
  ASSERT_TRUE(o.ok()) << o.status();
  bool wrote = false;
  for (const auto& w : sys_->write_log)
    if (w.find(std::string(kE1000e) + "/reset_method=bus") != std::string::npos) wrote = true;
  EXPECT_TRUE(wrote) << "reset_method=bus must be written before binding";
}

TEST_F(VfManagerTest, DeclineTearsDownAndRestoresDriverWhenConfigured) {
  VfManager m(*sys_, vfio_, Pool(/*restore=*/true));
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kE1000e, 1, "g0", regions_);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(Driver(kE1000e), "vfio-pci");
  vfio_.Clear();
  ASSERT_TRUE(m.Release(o->msg.offer_id(), "declined: no plug-in", false).ok());
  EXPECT_EQ(*m.StateOf(kE1000e), VfState::kFree);
  EXPECT_EQ(vfio_.Count("reset"), 1);
  EXPECT_EQ(vfio_.Count("unmap"), 2);
  EXPECT_EQ(Driver(kE1000e), "e1000e") << "restore_driver puts the original driver back";
}

TEST_F(VfManagerTest, MapFailureRollsBackAndNamesTheStep) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  vfio_.faults.map_at = 1;
  auto o = m.Attach(kVirtio, 1, "g0", regions_);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("map guest memory"), absl::string_view::npos) << o.status();
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
  EXPECT_EQ(vfio_.Count("unmap"), 1) << "only the region that was mapped is unmapped";
  EXPECT_EQ(vfio_.open_attachments(), 0);
  auto v = m.Describe(kVirtio);
  ASSERT_TRUE(v.ok());
  EXPECT_NE(v->last_error.find("map guest memory"), std::string::npos);
}

TEST_F(VfManagerTest, OpenFailureLeavesVfFree) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  vfio_.faults.open = true;
  auto o = m.Attach(kVirtio, 1, "g0", regions_);
  ASSERT_FALSE(o.ok());
  EXPECT_TRUE(absl::IsUnavailable(o.status())) << o.status();
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
}

TEST_F(VfManagerTest, ResetFailureOnReleaseMarksFailedUntilOperatorReset) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kVirtio, 1, "g0", regions_);
  ASSERT_TRUE(o.ok());
  ASSERT_TRUE(m.Accepted(o->msg.offer_id()).ok());
  vfio_.faults.reset = true;
  absl::Status s = m.Release(o->msg.offer_id(), "guest gone", false);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFailed);
  EXPECT_EQ(vfio_.open_attachments(), 0) << "closed even though the reset failed";
  EXPECT_TRUE(absl::IsFailedPrecondition(m.Attach(kVirtio, 2, "g1", regions_).status()));
  vfio_.faults.reset = false;
  ASSERT_TRUE(m.ResetVf(kVirtio).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
}

TEST_F(VfManagerTest, ResetOfAFreeVfBindsOpensResetsCloses) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  ASSERT_TRUE(m.ResetVf(kE1000e).ok());
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"open 0000:02:00.0", "reset 0000:02:00.0",
                                                   "close 0000:02:00.0"}));
  EXPECT_TRUE(absl::IsNotFound(m.ResetVf(kNvmePf)));
}

TEST_F(VfManagerTest, ForcedReleaseUnbindsOnAWorkerAndReturnsToFree) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kVirtio, 1, "g0", regions_);
  ASSERT_TRUE(o.ok());
  ASSERT_TRUE(m.Accepted(o->msg.offer_id()).ok());
  ASSERT_TRUE(m.Release(o->msg.offer_id(), "npactl vf detach --force", true).ok());
  EXPECT_EQ(vfio_.Count("reset"), 2);  // at attach and at the forced release
  for (int i = 0; i < 200 && *m.StateOf(kVirtio) != VfState::kFree; i++) {
    m.Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
  bool unbound = false;
  for (const auto& w : sys_->write_log)
    if (w.find(std::string(kVirtio) + "/driver/unbind") != std::string::npos) unbound = true;
  EXPECT_TRUE(unbound);
  EXPECT_EQ(Driver(kVirtio), "vfio-pci") << "drivers_probe puts vfio-pci back (override kept)";
}

TEST_F(VfManagerTest, UnknownOfferAndIllegalOrder) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  EXPECT_TRUE(absl::IsNotFound(m.Accepted(99)));
  EXPECT_TRUE(absl::IsNotFound(m.Attach(kNvmePf, 1, "g", regions_).status()));
  auto o = m.Attach(kVirtio, 1, "g0", regions_);
  ASSERT_TRUE(o.ok());
  absl::Status s = m.BeginRevoke(o->msg.offer_id());  // not accepted yet
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_NE(s.message().find("OFFERED -> REVOKING"), absl::string_view::npos) << s;
}

TEST_F(VfManagerTest, AttachNeedsRegions) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  GuestRegions none;
  auto o = m.Attach(kVirtio, 1, "g0", none);
  EXPECT_TRUE(absl::IsFailedPrecondition(o.status()));
  EXPECT_EQ(vfio_.Log().size(), 0u);
}

TEST_F(VfManagerTest, ListShowsInventoryAndPoolState) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto o = m.Attach(kVirtio, 5, "g5", regions_);
  ASSERT_TRUE(o.ok());
  auto l = m.List();
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->size(), 3u);  // two NICs and the SR-IOV PF
  const VfView& v = (*l)[0];
  EXPECT_EQ(v.fn.bdf, kVirtio);
  EXPECT_TRUE(v.in_pool);
  EXPECT_EQ(v.state, "OFFERED");
  EXPECT_EQ(v.guest, "g5");
  EXPECT_EQ(v.offer_id, o->msg.offer_id());
  EXPECT_EQ((*l)[1].state, "FREE");
  EXPECT_FALSE((*l)[2].in_pool);
  EXPECT_TRUE((*l)[2].fn.sriov_capable);
  EXPECT_EQ((*l)[2].fn.sriov_totalvfs, 2);
}

TEST_F(VfManagerTest, EnableVfsCreatesVirtfns) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  auto v = m.EnableVfs(kNvmePf, 2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 2u);
  EXPECT_TRUE(absl::IsOutOfRange(m.EnableVfs(kNvmePf, 3).status()));
  auto off = m.EnableVfs(kNvmePf, 0);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->empty());
}

// A VF a guest held across an agent restart (ADOPTED, from the restart
// roster): the agent opens nothing for it, never offers or resets it, and
// reclaims it (open afresh, reset, close, FREE) only once its group opens,
// i.e. once nobody holds the device fd (a busy group: the fake's open fault).
TEST_F(VfManagerTest, AdoptedVfIsNeverOfferedOrResetUntilItsGroupOpens) {
  VfManager::Options o = Pool();
  o.adopt_probe_ms = 0;  // every Poll tries the group
  VfManager m(*sys_, vfio_, o);
  ASSERT_TRUE(m.Init().ok());
  ASSERT_TRUE(m.Adopt(kVirtio, "g1", 7).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kAdopted);
  EXPECT_TRUE(m.IsAdopted(7));
  EXPECT_TRUE(vfio_.Log().empty()) << "adopting opens no group and resets nothing";
  // Refusals, none of which touches the device.
  EXPECT_TRUE(absl::IsNotFound(m.Adopt("0000:09:00.0", "g2", 8)));
  EXPECT_TRUE(absl::IsInvalidArgument(m.Adopt(kE1000e, "g2", 0)));
  absl::Status dup = m.Adopt(kE1000e, "g2", 7);
  EXPECT_TRUE(absl::IsInvalidArgument(dup)) << dup;
  EXPECT_NE(dup.message().find("already names vf 0000:01:00.0"), absl::string_view::npos) << dup;
  absl::Status twice = m.Adopt(kVirtio, "g2", 9);
  EXPECT_TRUE(absl::IsFailedPrecondition(twice)) << twice;
  EXPECT_NE(twice.message().find("is ADOPTED (held by guest 'g1')"), absl::string_view::npos) << twice;
  auto other = m.Attach(kVirtio, 12, "g2", regions_);
  EXPECT_TRUE(absl::IsFailedPrecondition(other.status()));
  EXPECT_NE(other.status().message().find("ADOPTED (held by guest 'g1'), not FREE"),
            absl::string_view::npos)
      << other.status();
  absl::Status rs = m.ResetVf(kVirtio);
  EXPECT_TRUE(absl::IsFailedPrecondition(rs));
  EXPECT_NE(rs.message().find("vf 0000:01:00.0 is ADOPTED: guest 'g1'"), absl::string_view::npos) << rs;
  EXPECT_NE(rs.message().find("npactl vf detach g1"), absl::string_view::npos) << rs;
  EXPECT_TRUE(absl::IsFailedPrecondition(m.RequestRelease(7))) << "no fd: no VFIO REQ";
  EXPECT_TRUE(absl::IsFailedPrecondition(m.Accepted(7)));
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kAdopted);
  EXPECT_TRUE(vfio_.Log().empty());
  auto d = m.Describe(kVirtio);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, "ADOPTED");
  EXPECT_EQ(d->guest, "g1");
  EXPECT_EQ(d->offer_id, 7u);
  EXPECT_NE(d->last_error.find("not back"), std::string::npos) << d->last_error;
  // New offers never reuse the adopted offer id.
  auto o2 = m.Attach(kE1000e, 12, "g2", regions_);
  ASSERT_TRUE(o2.ok()) << o2.status();
  EXPECT_GT(o2->msg.offer_id(), 7u);

  // The guest is back: the VF is tied to it (and only to it, once).
  EXPECT_FALSE(m.Rejoin("g2", 12).has_value());
  auto a = m.Rejoin("g1", 5);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->bdf, kVirtio);
  EXPECT_EQ(a->offer_id, 7u);
  EXPECT_EQ(m.OfferOfGuest(5), 7u);
  EXPECT_FALSE(m.Rejoin("g1", 6).has_value());
  EXPECT_TRUE(m.Describe(kVirtio)->last_error.empty());

  // A planned revoke whose guest still holds the fd (group busy): back to
  // ADOPTED with no live holder; no reset, no unbind.
  vfio_.Clear();
  sys_->write_log.clear();
  vfio_.faults.open = true;
  ASSERT_TRUE(m.BeginRevoke(7).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kRevoking);
  absl::Status busy = m.Release(7, "revoke_done", /*force_unbind=*/true);
  EXPECT_TRUE(absl::IsUnavailable(busy)) << busy;
  EXPECT_NE(busy.message().find("still held by guest 'g1'"), absl::string_view::npos) << busy;
  EXPECT_NE(busy.message().find("stays ADOPTED until its device fd closes"), absl::string_view::npos);
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kAdopted);
  EXPECT_FALSE(m.OfferOfGuest(5).has_value()) << "an orphan: no live holder";
  EXPECT_EQ(m.Describe(kVirtio)->guest, "g1");
  m.Poll();  // the probe: still busy
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kAdopted);
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"open 0000:01:00.0", "open 0000:01:00.0"}));
  EXPECT_TRUE(sys_->write_log.empty()) << "nothing unbound, forced or not";
  // The holder let go: the next probe reclaims it (open, reset, close).
  vfio_.Clear();
  vfio_.faults.open = false;
  m.Poll();
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
  EXPECT_EQ(vfio_.Log(), (std::vector<std::string>{"open 0000:01:00.0", "reset 0000:01:00.0",
                                                   "close 0000:01:00.0"}));
  EXPECT_EQ(vfio_.open_attachments(), 1) << "only the e1000e's offer is open";
  EXPECT_FALSE(m.IsAdopted(7));
  EXPECT_EQ(m.Describe(kVirtio)->guest, "");
  // And it is an ordinary pooled VF again.
  auto o3 = m.Attach(kVirtio, 13, "g3", regions_);
  ASSERT_TRUE(o3.ok()) << o3.status();
}

// The returned guest gives the VF back (RevokeDone, unsolicited or after a
// revoke) and its group opens: ADOPTED -> RESETTING -> FREE at once; a
// failing reset there ends in FAILED like any teardown.
TEST_F(VfManagerTest, AdoptedVfGivenBackIsResetOrFailed) {
  VfManager m(*sys_, vfio_, Pool());
  ASSERT_TRUE(m.Init().ok());
  ASSERT_TRUE(m.Adopt(kVirtio, "g1", 3).ok());
  ASSERT_TRUE(m.Adopt(kE1000e, "g2", 4).ok());
  ASSERT_TRUE(m.Rejoin("g1", 1).has_value());
  ASSERT_TRUE(m.Rejoin("g2", 2).has_value());
  ASSERT_TRUE(m.Release(3, "the guest gave it back", false).ok());
  EXPECT_EQ(*m.StateOf(kVirtio), VfState::kFree);
  vfio_.faults.reset = true;
  ASSERT_TRUE(m.BeginRevoke(4).ok());
  absl::Status s = m.Release(4, "revoke_done", false);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(*m.StateOf(kE1000e), VfState::kFailed);
  EXPECT_EQ(vfio_.open_attachments(), 0);
  // FAILED is the ordinary one now: npactl vf reset retries it.
  vfio_.faults.reset = false;
  EXPECT_TRUE(m.ResetVf(kE1000e).ok());
  EXPECT_EQ(*m.StateOf(kE1000e), VfState::kFree);
}

}  // namespace
}  // namespace npa::agent
