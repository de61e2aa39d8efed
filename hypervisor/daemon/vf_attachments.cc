// The VF path of npa-agent's guests; see vf_attachments.h for the flows and
// docs/vf-management.md for the operator's view.
#include "hypervisor/daemon/vf_attachments.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/daemon/session.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

// Late answers to this many given-up offers per guest are ignored (not a
// protocol error); older ones are UNEXPECTED.
constexpr size_t kMaxStaleOffers = 8;

}  // namespace

absl::Status CheckRegionBounds(const control::RegionAnnounce& a, size_t max_regions,
                               uint64_t max_guest_memory) {
  if (static_cast<size_t>(a.regions_size()) > max_regions)
    return absl::ResourceExhaustedError(absl::StrCat("region_announce lists ", a.regions_size(),
                                                     " regions; at most ", max_regions,
                                                     " per guest"));
  uint64_t total = 0;
  for (int i = 0; i < a.regions_size(); i++) {
    const uint64_t sz = a.regions(i).size();
    if (sz > max_guest_memory || total + sz > max_guest_memory)  // no wrap: total <= max
      return absl::ResourceExhaustedError(absl::StrCat(
          "region_announce maps more than max_guest_memory ", max_guest_memory,
          " bytes (region ", i, " of ", sz, " bytes brings it past)"));
    total += sz;
  }
  return absl::OkStatus();
}

absl::Status CheckRegionFdType(int fd, int index) {
  if (fcntl(fd, F_GET_SEALS) < 0) {
    const int e = errno;
    return absl::InvalidArgumentError(absl::StrCat(
        "region ", index, ": fd is not a memfd, hugetlbfs or tmpfs file (F_GET_SEALS: ",
        strerror(e), ")"));
  }
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0) {
    const int e = errno;
    return absl::InvalidArgumentError(
        absl::StrCat("region ", index, ": fstatfs of its fd: ", strerror(e)));
  }
  const auto magic = static_cast<unsigned long>(sf.f_type);
  if (magic != TMPFS_MAGIC && magic != HUGETLBFS_MAGIC)
    return absl::InvalidArgumentError(
        absl::StrCat("region ", index, ": fd is on a file system with magic 0x",
                     absl::Hex(magic), "; want tmpfs/memfd or hugetlbfs"));
  return absl::OkStatus();
}

VfAttachments::VfAttachments(Options opts, VfManager* vfs, GuestRegistry* guests, Hooks hooks)
    : opts_(opts), vfs_(vfs), guests_(guests), hooks_(std::move(hooks)) {}

std::vector<VfAttachments::Pending>::iterator VfAttachments::FindPending(Pending::Kind kind,
                                                                         uint64_t guest_id,
                                                                         uint64_t offer_id) {
  return std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
    return p.kind == kind && p.guest_id == guest_id && p.offer_id == offer_id;
  });
}

bool VfAttachments::IsStale(const Guest& g, uint64_t offer_id) const {
  return std::count(g.stale_offers.begin(), g.stale_offers.end(), offer_id) != 0;
}

void VfAttachments::Answer(const Pending& p, const absl::Status& st, const std::string& message) {
  if (p.waiter.fd < 0 || !hooks_.answer) return;
  hooks_.answer(p.waiter, st, message);
}

// ------------------------------------------------------------- guest side

absl::Status VfAttachments::OnRegions(ControlChannel& ch, Guest& g, ControlFrame& f) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  const uint64_t seq = f.env.seq();
  // An adopted VF (agent restart) maps nothing the agent holds: its
  // mappings are the dead agent's, so a new announce cannot stale them.
  if (g.offer_id != 0 && !(vfs_ && vfs_->IsAdopted(g.offer_id))) {
    SendError(ch, Error::UNEXPECTED,
              absl::StrCat("region_announce while VF ", g.vf_bdf, " is held (", g.lc.name(),
                           "): its DMA mappings would go stale; revoke first"),
              seq);
    return absl::FailedPreconditionError("regions re-announced with a VF held");
  }
  if (static_cast<size_t>(f.env.regions().regions_size()) != f.fds.size()) {
    SendError(ch, Error::FD_MISMATCH,
              absl::StrCat("regions lists ", f.env.regions().regions_size(), " regions but carries ",
                           f.fds.size(), " fds"),
              seq);
    return absl::InvalidArgumentError("regions/fd count mismatch");
  }
  if (absl::Status b = CheckRegionBounds(f.env.regions(), opts_.max_regions,
                                         opts_.max_guest_memory);
      !b.ok()) {
    f.fds.clear();  // closed now
    SendError(ch, Error::LIMIT, absl::StrCat("guest '", g.name, "': ", b.message()), seq);
    return b;
  }
  for (size_t i = 0; i < f.fds.size(); i++) {
    if (absl::Status t = CheckRegionFdType(f.fds[i].get(), static_cast<int>(i)); !t.ok()) {
      f.fds.clear();
      SendError(ch, Error::MALFORMED, absl::StrCat("region_announce: ", t.message()), seq);
      return t;
    }
  }
  // No VF holds them (checked above): the old mappings go before the new
  // ones are made, so two announces never map twice the bound.
  g.regions.reset();
  auto r = GuestRegions::FromAnnounce(f.env.regions(), f.fds);
  if (!r.ok()) {
    SendError(ch, Error::MALFORMED, absl::StrCat("region_announce: ", r.status().message()), seq);
    return r.status();
  }
  g.regions = std::make_unique<GuestRegions>(std::move(*r));
  NPA_LOG(Info, "control: guest %s announced %zu regions (%lu KiB)", g.name.c_str(),
          g.regions->regions().size(), static_cast<unsigned long>(g.regions->total_bytes() >> 10));
  return absl::OkStatus();
}

absl::Status VfAttachments::OnVfAccept(ControlChannel& ch, Guest& g, const Envelope& env) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  const auto& a = env.vf_accept();
  if (IsStale(g, a.offer_id())) {
    NPA_LOG(Info, "control: guest %s: late vf_accept for offer %lu (already given up); ignored",
            g.name.c_str(), static_cast<unsigned long>(a.offer_id()));
    return absl::OkStatus();
  }
  // An answer is legal only where the table has VF_OFFERED -> VF_ACTIVE.
  if (!g.lc.CanFire(GuestState::kVfActive)) {
    std::string msg = absl::StrCat("vf_accept for offer ", a.offer_id(), ", but guest '", g.name,
                                   "' is ", g.lc.name(), ": vf_accept needs ",
                                   StatesLeadingTo(GuestState::kVfActive));
    SendError(ch, Error::UNEXPECTED, msg, env.seq());
    return absl::FailedPreconditionError(msg);
  }
  auto p = FindPending(Pending::kAttach, g.id, a.offer_id());
  if (p == pending_.end()) {
    SendError(ch, Error::UNEXPECTED,
              absl::StrCat("vf_accept for offer ", a.offer_id(), ", but guest '", g.name,
                           "' has no pending offer with that id (state ", g.lc.name(), ")"),
              env.seq());
    return absl::FailedPreconditionError("unexpected vf_accept");
  }
  const Pending pv = *p;
  pending_.erase(p);
  if (!a.accepted()) {
    std::string why = absl::StrCat("guest '", g.name, "' declined VF ", g.vf_bdf, ": ",
                                   a.reason().empty() ? "no reason given" : a.reason());
    absl::Status td = Release(g, why, /*force=*/false);
    Answer(pv, absl::AbortedError(td.ok() ? why : absl::StrCat(why, "; teardown: ", td.message())),
           "");
    return absl::OkStatus();
  }
  if (absl::Status st = vfs_->Accepted(g.offer_id); !st.ok()) {
    Answer(pv, st, "");
    // The teardown's own failure is logged by Release and kept by the pool.
    Release(g, "accept bookkeeping failed", /*force=*/true).IgnoreError();
    return absl::OkStatus();
  }
  if (absl::Status st = g.Move(GuestState::kVfActive); !st.ok()) {
    // Asked above, so only a bug gets here: the guest cannot go on.
    Answer(pv, st, "");
    g.Break(std::string(st.message()));
    SendError(ch, Error::INTERNAL, std::string(st.message()), env.seq());
    return st;
  }
  g.vf_plugin = a.plugin();
  NPA_LOG(Info, "control: guest %s: VF %s ACTIVE (plug-in %s)", g.name.c_str(), g.vf_bdf.c_str(),
          a.plugin().c_str());
  Emit(EventKind::kVfAccept, g, g.vf_bdf, a.plugin());
  if (path_changed_) path_changed_(g, /*on_vf=*/true);
  Answer(pv, absl::OkStatus(),
         absl::StrCat("guest '", g.name, "' accepted VF ", g.vf_bdf, " (offer ", g.offer_id,
                      ", plug-in ", a.plugin().empty() ? "?" : a.plugin(), ")"));
  return absl::OkStatus();
}

absl::Status VfAttachments::OnRevokeDone(ControlChannel& ch, Guest& g, const Envelope& env) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  const auto& d = env.revoke_done();
  // The guest's words, for logs only: bounded and single-line.
  std::string reason = d.reason().substr(0, 160);
  std::replace_if(reason.begin(), reason.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  auto p = FindPending(Pending::kRevoke, g.id, d.offer_id());
  if (p == pending_.end()) {
    if (IsStale(g, d.offer_id())) {
      NPA_LOG(Info, "control: guest %s: late revoke_done for offer %lu (already forced); ignored",
              g.name.c_str(), static_cast<unsigned long>(d.offer_id()));
      return absl::OkStatus();
    }
    // Nobody asked: the shell gave the VF up by itself (VFIO ERR, or it
    // stopped its queues) and has closed its device fd. That is a release
    // where the table could revoke the guest (VF_ACTIVE -> REVOKING), whose
    // route back is REVOKING -> RUNNING.
    if (d.offer_id() != 0 && d.offer_id() == g.offer_id && g.lc.CanFire(GuestState::kRevoking)) {
      NPA_LOG(Warn, "control: guest %s gave VF %s back by itself (%s), tx_inflight_lost=%lu",
              g.name.c_str(), g.vf_bdf.c_str(), reason.empty() ? "no reason given" : reason.c_str(),
              static_cast<unsigned long>(d.tx_inflight_lost()));
      // The teardown's own failure is logged by Release and kept by the pool.
      Release(g, absl::StrCat("the guest gave it back: ", reason), /*force=*/false).IgnoreError();
      return absl::OkStatus();
    }
    SendError(ch, Error::UNEXPECTED,
              absl::StrCat("revoke_done for offer ", d.offer_id(), ", but guest '", g.name,
                           "' has no revoke in progress with that id (state ", g.lc.name(), ")"),
              env.seq());
    return absl::FailedPreconditionError("unexpected revoke_done");
  }
  const Pending pv = *p;
  pending_.erase(p);
  const std::string bdf = g.vf_bdf;
  if (pv.forced) {
    // The guest let go after VFIO REQ: only now is the reset safe for its
    // accounting (the device finished and handed back what it held). The
    // unbind then completes at once: no fd is left open.
    absl::Status td = Release(g, "forced: released after VFIO REQ", /*force=*/true);
    Answer(pv, td,
           absl::StrCat("VF ", bdf, " forcibly detached from guest '", g.name,
                        "': it released the device ", MonotonicMs() - pv.start_ms,
                        " ms after VFIO REQ, tx_inflight_lost=", d.tx_inflight_lost(),
                        "; reset, unmapped, unbound"));
    return absl::OkStatus();
  }
  absl::Status td = Release(g, "revoke_done", /*force=*/false);
  Answer(pv, td,
         absl::StrCat("VF ", bdf, " revoked from guest '", g.name, "': tx_inflight_lost=",
                      d.tx_inflight_lost(), ", reset and returned to the pool"));
  return absl::OkStatus();
}

absl::Status VfAttachments::Release(Guest& g, const std::string& why, bool force, bool closing) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  if (g.offer_id == 0) return absl::OkStatus();
  // Frames for g went through the VF (the shell announced its MAC there):
  // once back on the emulated path the uplink must announce it again.
  const bool was_on_vf =
      g.lc.state() == GuestState::kVfActive || g.lc.state() == GuestState::kRevoking;
  absl::Status td =
      vfs_ ? vfs_->Release(g.offer_id, why, force) : absl::InternalError("no VF manager");
  // An adopted VF whose group was still busy stays ADOPTED (vf_manager.h):
  // an orphan the restart roster keeps. This session gave it up, so only a
  // new resume of g (a new session) may take it up again.
  if (vfs_ && vfs_->IsAdopted(g.offer_id) && g.mac) {
    adopted_[g.name] = RosterEntry{g.name, *g.mac, g.vf_bdf, g.offer_id};
    g.lost_agent = false;
  }
  g.stale_offers.push_back(g.offer_id);
  if (g.stale_offers.size() > kMaxStaleOffers) g.stale_offers.erase(g.stale_offers.begin());
  NPA_LOG(Info, "control: guest %s: VF %s released (%s)%s", g.name.c_str(), g.vf_bdf.c_str(),
          why.c_str(), td.ok() ? "" : absl::StrCat("; teardown: ", td.message()).c_str());
  const std::string bdf = g.vf_bdf;
  if (was_on_vf) {
    auto rs = revoke_start_ns_.find(g.id);
    Emit(EventKind::kRevokeDone, g, bdf, why, rs == revoke_start_ns_.end() ? 0 : MonotonicNs() - rs->second);
  }
  revoke_start_ns_.erase(g.id);
  // The teardown of a released VF resets it first (VfManager::Teardown);
  // a teardown that failed is not counted as one.
  if (td.ok()) Emit(EventKind::kVfReset, g, bdf, "VFIO_DEVICE_RESET at release");
  Emit(EventKind::kVfReleased, g, bdf,
       td.ok() ? why : absl::StrCat(why, "; teardown: ", td.message()));
  g.offer_id = 0;
  g.vf_bdf.clear();
  g.vf_plugin.clear();
  // Back to the emulated path along the table: VF_OFFERED -> RUNNING,
  // REVOKING -> RUNNING, VF_ACTIVE -> REVOKING -> RUNNING. A guest already
  // BROKEN stays so (the close under way takes it).
  if (g.lc.state() == GuestState::kBroken) return td;
  std::vector<GuestState> path;
  absl::Status walk = ShortestPath(g.lc.state(), GuestState::kRunning, &path);
  for (GuestState n : path) {
    if (!walk.ok()) break;
    walk = g.Move(n);
  }
  if (!walk.ok()) {
    g.Break(absl::StrCat("VF released but no way back to RUNNING: ", walk.message()));
    return td;
  }
  if (was_on_vf && !closing) {
    Emit(EventKind::kFallback, g, bdf, why);
    if (path_changed_) path_changed_(g, /*on_vf=*/false);
  }
  return td;
}

void VfAttachments::Emit(EventKind k, const Guest& g, const std::string& vf,
                         const std::string& detail, uint64_t duration_ns) {
  if (!events_) return;
  AgentEvent e;
  e.kind = k;
  e.guest_id = g.id;
  e.guest = g.name;
  e.vf = vf;
  e.duration_ns = duration_ns;
  e.detail = detail;
  events_->Publish(std::move(e));
}

void VfAttachments::AnnounceRevoke(const Guest& g, const char* how) {
  revoke_start_ns_[g.id] = MonotonicNs();
  Emit(EventKind::kRevokeBegin, g, g.vf_bdf, how);
  // The switch may steer g's MAC to the uplink from now on: the shell reads
  // its emulated RX ring through the whole switch (on the VF after the VF's
  // own RX, then while it quiesces and drains the VF), so a frame steered
  // there is delivered, and one already on its way to the VF is drained.
  // Waiting for RevokeDone instead leaves the switch sending to the VF until
  // the guest's first frame by the uplink reaches it, which under load can
  // outlast the drain (lab scenario migrate lost one that way).
  if (path_changed_) path_changed_(g, /*on_vf=*/false);
}

absl::Status VfAttachments::TakeAtOnce(Guest& g, const std::string& why) {
  const std::string bdf = g.vf_bdf;
  const uint64_t oid = g.offer_id;
  // Any npactl still waiting on this offer is told.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->offer_id == oid) {
      Answer(*it, absl::AbortedError(absl::StrCat("VF ", bdf, ": ", why)), "");
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return Release(g, why, /*force=*/true);
}

// ------------------------------------------------------------- operations

absl::Status VfAttachments::StartAttach(Guest& g, const std::string& pci, uint32_t timeout_ms,
                                        AdminWaiter w) {
  if (!vfs_) return absl::FailedPreconditionError("this agent has no VF pool (--vf)");
  if (g.transport != "control" || g.session_fd < 0)
    return absl::FailedPreconditionError(absl::StrCat("guest '", g.name,
                                                      "' has no control session (transport ",
                                                      g.transport, "); cannot offer a VF"));
  // An offer is the arc RUNNING -> VF_OFFERED: the emulated path must be up
  // (it is the fallback) and no VF held.
  if (!g.lc.CanFire(GuestState::kVfOffered))
    return absl::FailedPreconditionError(
        absl::StrCat("guest ", g.name, " is ", g.lc.name(),
                     g.offer_id ? absl::StrCat(" and already holds VF ", g.vf_bdf) : "",
                     ": attach needs ", StatesLeadingTo(GuestState::kVfOffered)));
  if (!g.regions || g.regions->empty())
    return absl::FailedPreconditionError(
        absl::StrCat("guest '", g.name, "' has announced no memory regions (region_announce)"));
  ControlChannel* ch = hooks_.channel ? hooks_.channel(g.session_fd) : nullptr;
  if (!ch) return absl::InternalError("guest session missing");
  LogScope log_scope(g.name, pci);
  NPA_ASSIGN_OR_RETURN(VfManager::Offer o, vfs_->Attach(pci, g.id, g.name, *g.regions));
  const uint64_t offer_id = o.msg.offer_id();
  g.offer_id = offer_id;
  g.vf_bdf = o.msg.pci_address();
  if (absl::Status st = g.Move(GuestState::kVfOffered); !st.ok()) {
    // Asked above, so only a bug gets here: give the VF back, refuse.
    Release(g, "the guest table refused the offer", /*force=*/false).IgnoreError();
    return st;
  }
  Envelope e;
  *e.mutable_vf_offer() = o.msg;
  const int fd = o.device_fd.get();
  if (absl::Status st = ch->Send(e, std::span<const int>(&fd, 1)); !st.ok()) {
    // The teardown's own failure is logged by Release and kept by the pool.
    Release(g, "sending vf_offer failed", /*force=*/false).IgnoreError();
    return absl::UnavailableError(
        absl::StrCat("send vf_offer to guest '", g.name, "': ", st.message()));
  }
  // Our copy of the guest's fd closes here (o goes out of scope); the agent
  // keeps its own device fd inside the VfManager for resets.
  if (timeout_ms == 0) timeout_ms = opts_.accept_timeout_ms;
  pending_.push_back(Pending{Pending::kAttach, g.id, offer_id, MonotonicMs() + timeout_ms, w});
  NPA_LOG(Info, "control: guest %s: offered VF %s (offer %lu), waiting %u ms for vf_accept",
          g.name.c_str(), g.vf_bdf.c_str(), static_cast<unsigned long>(offer_id), timeout_ms);
  // VfManager::Attach resets the function after mapping, before any offer
  // (vf_manager.h, MAPPED): a successful attach is one reset.
  Emit(EventKind::kVfReset, g, g.vf_bdf, "VFIO_DEVICE_RESET before the offer");
  Emit(EventKind::kVfAttach, g, g.vf_bdf, absl::StrCat("offer ", offer_id));
  return absl::OkStatus();
}

absl::Status VfAttachments::StartDetach(Guest& g, bool force, uint32_t timeout_ms, AdminWaiter w,
                                        std::string* done_message) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  if (!vfs_) return absl::FailedPreconditionError("this agent has no VF pool (--vf)");
  std::string req_failed;
  if (force && g.offer_id && vfs_->IsAdopted(g.offer_id))
    return absl::FailedPreconditionError(absl::StrCat(
        "guest '", g.name, "' holds VF ", g.vf_bdf,
        " from before the agent restarted: the agent has no device fd to raise VFIO REQ on and"
        " does not reset or unbind the VF under the guest; use a planned detach (npactl vf"
        " detach ", g.name, "), or stop the guest (the VF is reclaimed once its device fd closes)"));
  // A detach that asks the guest is the arc VF_ACTIVE -> REVOKING.
  if (g.lc.CanFire(GuestState::kRevoking)) {
    if (force) {
      // Ask through the device first (VFIO REQ), bounded by the grace
      // period: resetting a VF that still holds frames loses them uncounted.
      absl::Status rq = vfs_->RequestRelease(g.offer_id);
      if (rq.ok()) {
        if (absl::Status st = g.Move(GuestState::kRevoking); !st.ok()) {
          g.Break(std::string(st.message()));  // asked above: a bug; the close releases the VF
          return st;
        }
        if (timeout_ms == 0) timeout_ms = opts_.force_grace_ms;
        const uint64_t now = MonotonicMs();
        pending_.push_back(Pending{Pending::kRevoke, g.id, g.offer_id, now + timeout_ms, w,
                                   /*forced=*/true, now});
        NPA_LOG(Info, "control: guest %s: forced detach of VF %s: VFIO REQ raised, %u ms grace",
                g.name.c_str(), g.vf_bdf.c_str(), timeout_ms);
        AnnounceRevoke(g, "forced");
        return absl::OkStatus();
      }
      req_failed = std::string(rq.message());
      NPA_LOG(Warn, "control: guest %s: forced detach: %s; taking the VF at once", g.name.c_str(),
              req_failed.c_str());
    } else {
      ControlChannel* ch = hooks_.channel ? hooks_.channel(g.session_fd) : nullptr;
      if (!ch) return absl::InternalError("guest session missing");
      NPA_RETURN_IF_ERROR(vfs_->BeginRevoke(g.offer_id));
      if (absl::Status st = g.Move(GuestState::kRevoking); !st.ok()) {
        g.Break(std::string(st.message()));  // asked above: a bug; the close releases the VF
        return st;
      }
      if (timeout_ms == 0) timeout_ms = opts_.revoke_timeout_ms;
      Envelope e;
      e.mutable_revoke()->set_offer_id(g.offer_id);
      e.mutable_revoke()->set_timeout_ms(timeout_ms);
      e.mutable_revoke()->set_reason("npactl vf detach");
      pending_.push_back(
          Pending{Pending::kRevoke, g.id, g.offer_id, MonotonicMs() + timeout_ms, w});
      if (absl::Status s = ch->Send(e); !s.ok()) {
        // The guest cannot hear us: the deadline will force it.
        NPA_LOG(Warn, "control: guest %s: send revoke: %s", g.name.c_str(),
                std::string(s.message()).c_str());
      }
      NPA_LOG(Info, "control: guest %s: revoking VF %s (offer %lu, %u ms)", g.name.c_str(),
              g.vf_bdf.c_str(), static_cast<unsigned long>(g.offer_id), timeout_ms);
      AnnounceRevoke(g, "planned");
      return absl::OkStatus();
    }
  } else if (!force && !g.lc.CanFire(GuestState::kVfActive)) {
    // Neither revocable nor an unanswered offer (VF_OFFERED, withdrawn below).
    const std::string needs = absl::StrCat(StatesLeadingTo(GuestState::kRevoking), " or ",
                                           StatesLeadingTo(GuestState::kVfActive));
    if (g.offer_id == 0)
      return absl::FailedPreconditionError(absl::StrCat(
          "guest ", g.name, " is ", g.lc.name(), " and holds no VF: detach needs ", needs));
    return absl::FailedPreconditionError(
        absl::StrCat("guest ", g.name, " is ", g.lc.name(), ": a revoke of ", g.vf_bdf,
                     " is already in progress; detach needs ", needs, " (or --force)"));
  } else if (g.offer_id == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "guest ", g.name, " is ", g.lc.name(), " and holds no VF: nothing to detach"));
  }
  // Forced without REQ, or an offer not yet answered (VF_OFFERED -> RUNNING):
  // don't wait for the guest.
  const std::string bdf = g.vf_bdf;
  NPA_RETURN_IF_ERROR(TakeAtOnce(
      g, force ? "npactl vf detach --force" : "detached before the guest answered the offer"));
  *done_message = absl::StrCat("VF ", bdf, " forcibly detached from guest '", g.name,
                               "' without asking it",
                               req_failed.empty() ? "" : absl::StrCat(" (", req_failed, ")"),
                               ": reset, unmapped, unbind pending until the guest closes its fd;"
                               " what the VF still held is lost uncounted");
  return absl::OkStatus();
}

void VfAttachments::CheckDeadlines() {
  if (pending_.empty()) return;
  const uint64_t now = MonotonicMs();
  std::vector<Pending> due;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now >= it->deadline_ms) {
      due.push_back(*it);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  for (const Pending& p : due) {
    Guest* g = guests_->Get(p.guest_id);
    if (!g || g->offer_id != p.offer_id) continue;
    const std::string bdf = g->vf_bdf;
    LogScope log_scope(g->name, bdf);
    if (p.kind == Pending::kAttach) {
      std::string why = absl::StrCat("guest '", g->name, "' did not answer vf_offer for ", bdf,
                                     " in time; offer withdrawn");
      NPA_LOG(Warn, "control: %s", why.c_str());
      // The teardown's own failure is logged by Release and kept by the pool.
      Release(*g, why, /*force=*/true).IgnoreError();
      Answer(p, absl::DeadlineExceededError(why), "");
    } else {
      const bool adopted = vfs_ && vfs_->IsAdopted(p.offer_id);
      std::string why = absl::StrCat(
          "guest '", g->name, "' did not answer ", p.forced ? "VFIO REQ" : "revoke", " of ", bdf,
          adopted ? " in time; adopted VF: reclaimed only once its device fd closes"
                  : " in time; forced (reset, unmap, unbind)");
      NPA_LOG(Warn, "control: %s", why.c_str());
      absl::Status td = Release(*g, why, /*force=*/true);
      Answer(p, td, why);
    }
  }
}

void VfAttachments::OnGuestClosing(Guest& g, const std::string& why) {
  LogScope log_scope(g.name, g.vf_bdf);  // common/log.h: the fields of every line below
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->guest_id == g.id) {
      Answer(*it, absl::AbortedError(absl::StrCat("guest '", g.name, "' closed: ", why)), "");
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  // The guest may still hold the device fd (a session closed by a live
  // process): reset and unbind without waiting for it. The teardown's own
  // failure is logged by Release and kept by the pool.
  if (g.offer_id)
    Release(g, absl::StrCat("guest closed: ", why), /*force=*/true, /*closing=*/true).IgnoreError();
}

void VfAttachments::ForgetAdmin(int fd) {
  for (Pending& p : pending_)
    if (p.waiter.fd == fd) p.waiter.fd = -1;  // nobody left to answer
}

}  // namespace npa::agent
