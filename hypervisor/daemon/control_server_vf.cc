// hypervisor/daemon/control_server_vf.cc — the VF half of ControlServer: regions,
// VfOffer/VfAccept, Revoke/RevokeDone, and the npactl vf operations. The
// protocol is described in control_server.h; the VF steps in vf_manager.h.
#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/daemon/control_server.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

// Admin error codes by what the operator has to do about it.
Error::Code AdminCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound: return Error::NOT_FOUND;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return Error::MALFORMED;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded: return Error::BUSY;
    default: return Error::INTERNAL;
  }
}

constexpr size_t kMaxStaleOffers = 8;

}  // namespace

ControlServer::Guest* ControlServer::FindGuest(const std::string& want) {
  uint64_t want_id = 0;
  bool numeric = absl::SimpleAtoi(want, &want_id);
  for (auto& [id, g] : guests_)
    if (g.name == want || (numeric && id == want_id)) return &g;
  return nullptr;
}

// ------------------------------------------------------------- guest side

absl::Status ControlServer::HandleRegions(Session& s, Guest& g, ControlFrame& f) {
  const uint64_t seq = f.env.seq();
  if (g.offer_id != 0) {
    SendError(s, Error::UNEXPECTED,
              absl::StrCat("region_announce while VF ", g.vf_bdf, " is held (", g.lc.name(),
                           "): its DMA mappings would go stale; revoke first"),
              seq);
    return absl::FailedPreconditionError("regions re-announced with a VF held");
  }
  if (static_cast<size_t>(f.env.regions().regions_size()) != f.fds.size()) {
    SendError(s, Error::FD_MISMATCH,
              absl::StrCat("regions lists ", f.env.regions().regions_size(), " regions but carries ",
                           f.fds.size(), " fds"),
              seq);
    return absl::InvalidArgumentError("regions/fd count mismatch");
  }
  auto r = GuestRegions::FromAnnounce(f.env.regions(), f.fds);
  if (!r.ok()) {
    SendError(s, Error::MALFORMED, absl::StrCat("region_announce: ", r.status().message()), seq);
    return r.status();
  }
  g.regions = std::make_unique<GuestRegions>(std::move(*r));
  NPA_LOG(Info, "control: guest %s announced %zu regions (%lu KiB)", g.name.c_str(),
          g.regions->regions().size(), static_cast<unsigned long>(g.regions->total_bytes() >> 10));
  return absl::OkStatus();
}

absl::Status ControlServer::HandleVfAccept(Session& s, Guest& g, const Envelope& env) {
  const auto& a = env.vf_accept();
  auto p = std::find_if(pending_vf_.begin(), pending_vf_.end(), [&](const PendingVf& x) {
    return x.kind == PendingVf::kAttach && x.guest_id == g.id && x.offer_id == a.offer_id();
  });
  if (p == pending_vf_.end()) {
    if (std::count(g.stale_offers.begin(), g.stale_offers.end(), a.offer_id())) {
      NPA_LOG(Info, "control: guest %s: late vf_accept for offer %lu (already given up); ignored",
              g.name.c_str(), static_cast<unsigned long>(a.offer_id()));
      return absl::OkStatus();
    }
    SendError(s, Error::UNEXPECTED,
              absl::StrCat("vf_accept for offer ", a.offer_id(), ", but guest '", g.name,
                           "' has no pending offer with that id (state ", g.lc.name(), ")"),
              env.seq());
    return absl::FailedPreconditionError("unexpected vf_accept");
  }
  PendingVf pv = *p;
  pending_vf_.erase(p);
  if (!a.accepted()) {
    std::string why = absl::StrCat("guest '", g.name, "' declined VF ", g.vf_bdf, ": ",
                                   a.reason().empty() ? "no reason given" : a.reason());
    absl::Status td = ReleaseGuestVf(g, why, /*force=*/false);
    AnswerPending(pv, absl::AbortedError(td.ok() ? why : absl::StrCat(why, "; teardown: ", td.message())),
                  "");
    return absl::OkStatus();
  }
  if (absl::Status st = opts_.vfs->Accepted(g.offer_id); !st.ok()) {
    AnswerPending(pv, st, "");
    (void)ReleaseGuestVf(g, "accept bookkeeping failed", true);
    return absl::OkStatus();
  }
  (void)g.lc.Transition(GuestState::kVfActive);
  g.vf_plugin = a.plugin();
  NPA_LOG(Info, "control: guest %s: VF %s ACTIVE (plug-in %s)", g.name.c_str(), g.vf_bdf.c_str(),
          a.plugin().c_str());
  AnswerPending(pv, absl::OkStatus(),
                absl::StrCat("guest '", g.name, "' accepted VF ", g.vf_bdf, " (offer ", g.offer_id,
                             ", plug-in ", a.plugin().empty() ? "?" : a.plugin(), ")"));
  return absl::OkStatus();
}

absl::Status ControlServer::HandleRevokeDone(Session& s, Guest& g, const Envelope& env) {
  const auto& d = env.revoke_done();
  // The guest's words, for logs only: bounded and single-line.
  std::string reason = d.reason().substr(0, 160);
  std::replace_if(reason.begin(), reason.end(), [](char c) { return c < 0x20 || c == 0x7f; }, '?');
  auto p = std::find_if(pending_vf_.begin(), pending_vf_.end(), [&](const PendingVf& x) {
    return x.kind == PendingVf::kRevoke && x.guest_id == g.id && x.offer_id == d.offer_id();
  });
  if (p == pending_vf_.end()) {
    if (std::count(g.stale_offers.begin(), g.stale_offers.end(), d.offer_id())) {
      NPA_LOG(Info, "control: guest %s: late revoke_done for offer %lu (already forced); ignored",
              g.name.c_str(), static_cast<unsigned long>(d.offer_id()));
      return absl::OkStatus();
    }
    if (d.offer_id() != 0 && d.offer_id() == g.offer_id && g.lc.state() == GuestState::kVfActive) {
      // Nobody asked: the shell gave the VF up by itself (VFIO ERR, or it
      // stopped its queues) and has closed its device fd.
      std::string bdf = g.vf_bdf;
      NPA_LOG(Warn, "control: guest %s gave VF %s back by itself (%s), tx_inflight_lost=%lu",
              g.name.c_str(), bdf.c_str(), reason.empty() ? "no reason given" : reason.c_str(),
              static_cast<unsigned long>(d.tx_inflight_lost()));
      (void)ReleaseGuestVf(g, absl::StrCat("the guest gave it back: ", reason), /*force=*/false);
      return absl::OkStatus();
    }
    SendError(s, Error::UNEXPECTED,
              absl::StrCat("revoke_done for offer ", d.offer_id(), ", but guest '", g.name,
                           "' has no revoke in progress with that id (state ", g.lc.name(), ")"),
              env.seq());
    return absl::FailedPreconditionError("unexpected revoke_done");
  }
  PendingVf pv = *p;
  pending_vf_.erase(p);
  std::string bdf = g.vf_bdf;
  if (pv.forced) {
    // The guest let go after VFIO REQ: only now is the reset safe for its
    // accounting (the device finished and handed back what it held). The
    // unbind then completes at once: no fd is left open.
    absl::Status td = ReleaseGuestVf(g, "forced: released after VFIO REQ", /*force=*/true);
    AnswerPending(pv, td,
                  absl::StrCat("VF ", bdf, " forcibly detached from guest '", g.name,
                               "': it released the device ", NowMs() - pv.start_ms,
                               " ms after VFIO REQ, tx_inflight_lost=", d.tx_inflight_lost(),
                               "; reset, unmapped, unbound"));
    return absl::OkStatus();
  }
  absl::Status td = ReleaseGuestVf(g, "revoke_done", /*force=*/false);
  AnswerPending(pv, td,
                absl::StrCat("VF ", bdf, " revoked from guest '", g.name, "': tx_inflight_lost=",
                             d.tx_inflight_lost(), ", reset and returned to the pool"));
  return absl::OkStatus();
}

absl::Status ControlServer::ReleaseGuestVf(Guest& g, const std::string& why, bool force) {
  if (g.offer_id == 0) return absl::OkStatus();
  absl::Status td = opts_.vfs ? opts_.vfs->Release(g.offer_id, why, force)
                              : absl::InternalError("no VF manager");
  g.stale_offers.push_back(g.offer_id);
  if (g.stale_offers.size() > kMaxStaleOffers) g.stale_offers.erase(g.stale_offers.begin());
  NPA_LOG(Info, "control: guest %s: VF %s released (%s)%s", g.name.c_str(), g.vf_bdf.c_str(),
          why.c_str(), td.ok() ? "" : absl::StrCat("; teardown: ", td.message()).c_str());
  g.offer_id = 0;
  g.vf_bdf.clear();
  g.vf_plugin.clear();
  GuestState st = g.lc.state();
  if (st == GuestState::kVfOffered || st == GuestState::kVfActive || st == GuestState::kRevoking) {
    std::vector<GuestState> path;
    if (ShortestPath(st, GuestState::kRunning, &path).ok())
      for (GuestState n : path) (void)g.lc.Transition(n);
  }
  return td;
}

// ------------------------------------------------------------- operations

absl::Status ControlServer::StartVfAttach(Guest& g, const std::string& pci, uint32_t timeout_ms,
                                          int admin_fd, uint64_t admin_seq) {
  if (!opts_.vfs) return absl::FailedPreconditionError("this agent has no VF pool (--vf)");
  if (g.transport != "control" || g.session_fd < 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "guest '", g.name, "' has no control session (transport ", g.transport, "); cannot offer a VF"));
  if (g.offer_id != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("guest '", g.name, "' already holds VF ", g.vf_bdf, " (", g.lc.name(), ")"));
  if (g.lc.state() != GuestState::kRunning)
    return absl::FailedPreconditionError(absl::StrCat(
        "guest '", g.name, "' is ", g.lc.name(),
        "; a VF is offered only to a RUNNING guest (its emulated path is the fallback)"));
  if (!g.regions || g.regions->empty())
    return absl::FailedPreconditionError(
        absl::StrCat("guest '", g.name, "' has announced no memory regions (region_announce)"));
  auto sit = sessions_.find(g.session_fd);
  if (sit == sessions_.end()) return absl::InternalError("guest session missing");
  NPA_ASSIGN_OR_RETURN(VfManager::Offer o, opts_.vfs->Attach(pci, g.id, g.name, *g.regions));
  const uint64_t offer_id = o.msg.offer_id();
  g.offer_id = offer_id;
  g.vf_bdf = o.msg.pci_address();
  (void)g.lc.Transition(GuestState::kVfOffered);
  Envelope e;
  *e.mutable_vf_offer() = o.msg;
  int fd = o.device_fd.get();
  if (absl::Status st = sit->second.ch->Send(e, std::span<const int>(&fd, 1)); !st.ok()) {
    (void)ReleaseGuestVf(g, "sending vf_offer failed", /*force=*/false);
    return absl::UnavailableError(absl::StrCat("send vf_offer to guest '", g.name, "': ", st.message()));
  }
  // Our copy of the guest's fd closes here (o goes out of scope); the agent
  // keeps its own device fd inside the VfManager for resets.
  if (timeout_ms == 0) timeout_ms = opts_.vf_accept_timeout_ms;
  pending_vf_.push_back(PendingVf{PendingVf::kAttach, g.id, offer_id, NowMs() + timeout_ms, admin_fd,
                                  admin_seq});
  NPA_LOG(Info, "control: guest %s: offered VF %s (offer %lu), waiting %u ms for vf_accept",
          g.name.c_str(), g.vf_bdf.c_str(), static_cast<unsigned long>(offer_id), timeout_ms);
  return absl::OkStatus();
}

absl::Status ControlServer::StartVfDetach(Guest& g, bool force, uint32_t timeout_ms, int admin_fd,
                                          uint64_t admin_seq, std::string* done_message) {
  if (!opts_.vfs) return absl::FailedPreconditionError("this agent has no VF pool (--vf)");
  if (g.offer_id == 0)
    return absl::FailedPreconditionError(absl::StrCat("guest '", g.name, "' holds no VF"));
  GuestState st = g.lc.state();
  if (st == GuestState::kRevoking && !force)
    return absl::FailedPreconditionError(
        absl::StrCat("guest '", g.name, "': a revoke of ", g.vf_bdf, " is already in progress"));
  std::string req_failed;
  if (force && st == GuestState::kVfActive) {
    // Ask through the device first (VFIO REQ), bounded by the grace period:
    // resetting a VF that still holds frames loses them uncounted.
    absl::Status rq = opts_.vfs->RequestRelease(g.offer_id);
    if (rq.ok()) {
      (void)g.lc.Transition(GuestState::kRevoking);
      if (timeout_ms == 0) timeout_ms = opts_.vf_force_grace_ms;
      const uint64_t now = NowMs();
      pending_vf_.push_back(PendingVf{PendingVf::kRevoke, g.id, g.offer_id, now + timeout_ms, admin_fd,
                                      admin_seq, /*forced=*/true, now});
      NPA_LOG(Info, "control: guest %s: forced detach of VF %s: VFIO REQ raised, %u ms grace",
              g.name.c_str(), g.vf_bdf.c_str(), timeout_ms);
      return absl::OkStatus();
    }
    req_failed = std::string(rq.message());
    NPA_LOG(Warn, "control: guest %s: forced detach: %s; taking the VF at once", g.name.c_str(),
            req_failed.c_str());
  }
  if (force || st == GuestState::kVfOffered) {
    // Forced without REQ, or an offer not yet answered: don't wait for the
    // guest. Any npactl still waiting on this offer gets told.
    std::string bdf = g.vf_bdf;
    uint64_t oid = g.offer_id;
    std::string why = force ? "npactl vf detach --force" : "detached before the guest answered the offer";
    for (auto it = pending_vf_.begin(); it != pending_vf_.end();)
      if (it->offer_id == oid) {
        AnswerPending(*it, absl::AbortedError(absl::StrCat("VF ", bdf, ": ", why)), "");
        it = pending_vf_.erase(it);
      } else {
        ++it;
      }
    absl::Status td = ReleaseGuestVf(g, why, /*force=*/true);
    NPA_RETURN_IF_ERROR(td);
    *done_message = absl::StrCat("VF ", bdf, " forcibly detached from guest '", g.name,
                                 "' without asking it",
                                 req_failed.empty() ? "" : absl::StrCat(" (", req_failed, ")"),
                                 ": reset, unmapped, unbind pending until the guest closes its fd;"
                                 " what the VF still held is lost uncounted");
    return absl::OkStatus();
  }
  auto sit = sessions_.find(g.session_fd);
  if (sit == sessions_.end()) return absl::InternalError("guest session missing");
  NPA_RETURN_IF_ERROR(opts_.vfs->BeginRevoke(g.offer_id));
  (void)g.lc.Transition(GuestState::kRevoking);
  if (timeout_ms == 0) timeout_ms = opts_.vf_revoke_timeout_ms;
  Envelope e;
  e.mutable_revoke()->set_offer_id(g.offer_id);
  e.mutable_revoke()->set_timeout_ms(timeout_ms);
  e.mutable_revoke()->set_reason("npactl vf detach");
  pending_vf_.push_back(PendingVf{PendingVf::kRevoke, g.id, g.offer_id, NowMs() + timeout_ms,
                                  admin_fd, admin_seq});
  if (absl::Status s = sit->second.ch->Send(e); !s.ok()) {
    // The guest cannot hear us: the deadline will force it.
    NPA_LOG(Warn, "control: guest %s: send revoke: %s", g.name.c_str(), std::string(s.message()).c_str());
  }
  NPA_LOG(Info, "control: guest %s: revoking VF %s (offer %lu, %u ms)", g.name.c_str(), g.vf_bdf.c_str(),
          static_cast<unsigned long>(g.offer_id), timeout_ms);
  return absl::OkStatus();
}

void ControlServer::CheckVfDeadlines() {
  if (pending_vf_.empty()) return;
  const uint64_t now = NowMs();
  std::vector<PendingVf> due;
  for (auto it = pending_vf_.begin(); it != pending_vf_.end();)
    if (now >= it->deadline_ms) {
      due.push_back(*it);
      it = pending_vf_.erase(it);
    } else {
      ++it;
    }
  for (const PendingVf& p : due) {
    auto git = guests_.find(p.guest_id);
    if (git == guests_.end() || git->second.offer_id != p.offer_id) continue;
    Guest& g = git->second;
    std::string bdf = g.vf_bdf;
    if (p.kind == PendingVf::kAttach) {
      std::string why = absl::StrCat("guest '", g.name, "' did not answer vf_offer for ", bdf,
                                     " in time; offer withdrawn");
      NPA_LOG(Warn, "control: %s", why.c_str());
      (void)ReleaseGuestVf(g, why, /*force=*/true);
      AnswerPending(p, absl::DeadlineExceededError(why), "");
    } else {
      std::string why = absl::StrCat("guest '", g.name, "' did not answer ",
                                     p.forced ? "VFIO REQ" : "revoke", " of ", bdf,
                                     " in time; forced (reset, unmap, unbind)");
      NPA_LOG(Warn, "control: %s", why.c_str());
      absl::Status td = ReleaseGuestVf(g, why, /*force=*/true);
      AnswerPending(p, td, why);
    }
  }
}

void ControlServer::AnswerPending(const PendingVf& p, const absl::Status& st,
                                  const std::string& message) {
  if (p.admin_fd < 0) return;
  auto sit = sessions_.find(p.admin_fd);
  if (sit == sessions_.end() || sit->second.role != Role::kAdmin) return;
  Envelope rep;
  rep.set_seq(p.admin_seq);
  auto* a = rep.mutable_admin_reply();
  a->set_agent_name(opts_.agent_name);
  a->set_uptime_ms(NowMs() - start_ms_);
  if (!st.ok()) {
    a->mutable_error()->set_code(AdminCode(st));
    a->mutable_error()->set_message(std::string(st.message()));
  }
  a->set_message(message.empty() ? std::string(st.message()) : message);
  (void)sit->second.ch->Send(rep);
}

void ControlServer::FailPendingOfGuest(uint64_t guest_id, const std::string& why) {
  for (auto it = pending_vf_.begin(); it != pending_vf_.end();)
    if (it->guest_id == guest_id) {
      AnswerPending(*it, absl::AbortedError(why), "");
      it = pending_vf_.erase(it);
    } else {
      ++it;
    }
}

void ControlServer::FillVfInfo(const VfView& v, control::VfInfo* out) const {
  out->set_pci_address(v.fn.bdf);
  out->set_vendor(v.fn.vendor);
  out->set_device(v.fn.device);
  out->set_subsystem_vendor(v.fn.subsystem_vendor);
  out->set_subsystem_device(v.fn.subsystem_device);
  out->set_class_code(v.fn.class_code);
  out->set_revision(v.revision);
  out->set_driver(v.fn.driver);
  out->set_iommu_group(v.fn.iommu_group ? *v.fn.iommu_group : -1);
  out->set_numa_node(v.fn.numa_node ? *v.fn.numa_node : -1);
  out->set_sriov_totalvfs(static_cast<uint32_t>(std::max(0, v.fn.sriov_totalvfs)));
  out->set_sriov_numvfs(static_cast<uint32_t>(std::max(0, v.fn.sriov_numvfs)));
  out->set_physfn(v.fn.physfn);
  for (const auto& m : v.fn.reset_methods) out->add_reset_methods(m);
  out->set_state(v.state);
  out->set_guest(v.guest);
  out->set_offer_id(v.offer_id);
  out->set_in_pool(v.in_pool);
  out->set_last_error(v.last_error);
}

absl::Status ControlServer::AdminVf(Session& s, const Envelope& req) {
  const control::AdminRequest& r = req.admin_request();
  const uint64_t seq = req.seq();
  Envelope rep;
  rep.set_seq(seq);
  auto* a = rep.mutable_admin_reply();
  a->set_agent_name(opts_.agent_name);
  a->set_uptime_ms(NowMs() - start_ms_);
  auto fail = [&](const absl::Status& st) {
    a->mutable_error()->set_code(AdminCode(st));
    a->mutable_error()->set_message(std::string(st.message()));
    return s.ch->Send(rep);
  };
  auto describe = [&](const std::string& bdf) {
    if (!opts_.vfs) return;
    auto v = opts_.vfs->Describe(bdf);
    if (v.ok()) FillVfInfo(*v, a->add_vfs());
  };
  switch (r.op_case()) {
    case control::AdminRequest::kVfList: {
      if (!opts_.vfs) {
        // No pool: still show the inventory (read-only).
        vf::SysfsRoot sys;
        RealVfioLayer none(sys);
        VfManager inv(sys, none, {});
        auto l = inv.List();
        if (!l.ok()) return fail(l.status());
        for (const auto& v : *l) FillVfInfo(v, a->add_vfs());
        return s.ch->Send(rep);
      }
      auto l = opts_.vfs->List();
      if (!l.ok()) return fail(l.status());
      for (const auto& v : *l) FillVfInfo(v, a->add_vfs());
      return s.ch->Send(rep);
    }
    case control::AdminRequest::kVfAttach: {
      const auto& x = r.vf_attach();
      Guest* g = FindGuest(x.guest());
      if (!g) return fail(absl::NotFoundError(absl::StrCat("no guest named or numbered '", x.guest(), "'")));
      if (absl::Status st = StartVfAttach(*g, x.pci(), x.timeout_ms(), s.ch->fd(), seq); !st.ok()) {
        describe(x.pci());
        return fail(st);
      }
      return absl::OkStatus();  // answered on vf_accept or its deadline
    }
    case control::AdminRequest::kVfDetach: {
      const auto& x = r.vf_detach();
      Guest* g = FindGuest(x.guest());
      if (!g) return fail(absl::NotFoundError(absl::StrCat("no guest named or numbered '", x.guest(), "'")));
      std::string bdf = g->vf_bdf, msg;
      absl::Status st = StartVfDetach(*g, x.force(), x.timeout_ms(), s.ch->fd(), seq, &msg);
      if (!st.ok()) return fail(st);
      if (msg.empty()) return absl::OkStatus();  // answered on revoke_done or its deadline
      a->set_message(msg);
      describe(bdf);
      return s.ch->Send(rep);
    }
    case control::AdminRequest::kVfReset: {
      if (!opts_.vfs) return fail(absl::FailedPreconditionError("this agent has no VF pool (--vf)"));
      const std::string& pci = r.vf_reset().pci();
      if (absl::Status st = opts_.vfs->ResetVf(pci); !st.ok()) {
        describe(pci);
        return fail(st);
      }
      a->set_message(absl::StrCat("VF ", pci, " reset (VFIO_DEVICE_RESET)"));
      describe(pci);
      return s.ch->Send(rep);
    }
    case control::AdminRequest::kVfEnable: {
      if (!opts_.vfs) return fail(absl::FailedPreconditionError("this agent has no VF pool (--vf)"));
      const auto& x = r.vf_enable();
      if (x.num_vfs() > 4096) return fail(absl::InvalidArgumentError("num_vfs above 4096"));
      auto v = opts_.vfs->EnableVfs(x.pf(), static_cast<int>(x.num_vfs()));
      if (!v.ok()) return fail(v.status());
      a->set_message(absl::StrCat(x.pf(), ": sriov_numvfs=", x.num_vfs(), " (", absl::StrJoin(*v, " "), ")"));
      return s.ch->Send(rep);
    }
    default:
      return fail(absl::InternalError("not a VF operation"));
  }
}

}  // namespace npa::agent
