#include "hypervisor/daemon/admin_service.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/vf/vfio_layer.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

void FillVfInfo(const VfView& v, control::VfInfo* out) {
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

void FillEvent(const AgentEvent& e, control::AgentEvent* out) {
  out->set_seq(e.seq);
  out->set_mono_ns(e.mono_ns);
  out->set_unix_ms(e.unix_ms);
  out->set_kind(EventKindName(e.kind));
  out->set_guest_id(e.guest_id);
  out->set_guest(e.guest);
  out->set_vf(e.vf);
  out->set_duration_us(e.duration_ns / 1000);
  out->set_detail(e.detail);
}

}  // namespace

AdminService::AdminService(std::string agent_name, GuestRegistry* guests, Dataplane* dp,
                           VfAttachments* vf, Migrations* mig, AgentEvents* events)
    : agent_name_(std::move(agent_name)),
      start_ms_(MonotonicMs()),
      guests_(guests),
      dp_(dp),
      vf_(vf),
      mig_(mig),
      events_(events) {}

Error::Code AdminService::CodeFor(const absl::Status& s) {
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

void AdminService::FillGuestInfo(const Guest& g, bool with_queues, control::GuestInfo* out) {
  out->set_id(g.id);
  out->set_name(g.name);
  out->set_mac(g.mac ? MacToString(*g.mac) : "");
  out->set_state(g.lc.name());
  out->set_path(g.lc.state() == GuestState::kVfActive ? "vf" : g.in_dataplane ? "emulated" : "none");
  const uint16_t nq = g.port ? g.port->num_queue_pairs() : 0;
  // Report the queue pairs the guest actually enabled; the negotiated
  // maximum (or a Hello sent before configure) overstates it.
  uint16_t ready = 0;
  for (uint16_t q = 0; q < nq; q++) ready += g.port->QueueReady(q) ? 1 : 0;
  out->set_queue_pairs(ready ? ready : (g.transport == "control" ? g.queue_pairs : nq));
  out->set_vhost_ready(g.port && g.port->QueueReady(0));
  out->set_pid(g.pid);
  out->set_transport(g.transport);
  if (with_queues)
    for (uint16_t q = 0; q < nq; q++) CopyQueueCounters(q, g.port->counters(q), out->add_queues());
}

Envelope AdminService::NewReply(uint64_t seq) const {
  Envelope rep;
  rep.set_seq(seq);
  auto* a = rep.mutable_admin_reply();
  a->set_agent_name(agent_name_);
  a->set_uptime_ms(MonotonicMs() - start_ms_);
  return rep;
}

void AdminService::Answer(ControlChannel& ch, const AdminWaiter& w, const absl::Status& st,
                          const std::string& message) {
  Envelope rep = NewReply(w.seq);
  auto* a = rep.mutable_admin_reply();
  if (!st.ok()) {
    a->mutable_error()->set_code(CodeFor(st));
    a->mutable_error()->set_message(std::string(st.message()));
  }
  a->set_message(message.empty() ? std::string(st.message()) : message);
  // npactl may have given up and left; its session closes on its own.
  ch.Send(rep).IgnoreError();
}

absl::Status AdminService::Handle(ControlChannel& ch, const ControlFrame& f) {
  const control::AdminRequest& r = f.env.admin_request();
  Envelope rep = NewReply(f.env.seq());
  auto* a = rep.mutable_admin_reply();
  auto refuse = [&](const std::string& msg) {
    a->mutable_error()->set_code(Error::MALFORMED);
    a->mutable_error()->set_message(msg);
    ch.Send(rep).IgnoreError();  // the session closes next anyway
    return absl::InvalidArgumentError(msg);
  };
  if (!f.fds.empty())
    return refuse(absl::StrCat("admin_request carries ", f.fds.size(), " fds; it takes none"));
  if (following(ch.fd()))
    return refuse("this session follows the agent's events; it takes no further request");
  switch (r.op_case()) {
    case control::AdminRequest::kListGuests:
      for (const auto& [id, g] : *guests_) FillGuestInfo(g, false, a->add_guests());
      break;
    case control::AdminRequest::kGuestStats: {
      const std::string& want = r.guest_stats().guest();
      uint64_t want_id = 0;
      const bool numeric = absl::SimpleAtoi(want, &want_id);
      bool found = false;
      for (const auto& [id, g] : *guests_) {
        if (want.empty() || g.name == want || (numeric && id == want_id)) {
          FillGuestInfo(g, true, a->add_guests());
          found = true;
        }
      }
      if (!found && !want.empty()) {
        a->mutable_error()->set_code(Error::NOT_FOUND);
        a->mutable_error()->set_message(absl::StrCat("no guest named or numbered '", want, "'"));
      }
      break;
    }
    case control::AdminRequest::kAgentStats: {
      for (const auto& [id, g] : *guests_) FillGuestInfo(g, false, a->add_guests());
      if (dp_) {
        SwitchCounters sc = dp_->switch_counters();
        a->set_switch_flooded(sc.flooded);
        a->set_switch_unicast(sc.unicast);
        if (TapUplink* up = dp_->uplink()) {
          UplinkCounters uc = up->counters();
          auto* u = a->mutable_uplink();
          u->set_name(up->name());
          u->set_rx_packets(uc.rx_packets);
          u->set_rx_bytes(uc.rx_bytes);
          u->set_rx_dropped(uc.rx_dropped);
          u->set_tx_packets(uc.tx_packets);
          u->set_tx_bytes(uc.tx_bytes);
          u->set_tx_dropped(uc.tx_dropped);
        }
      }
      break;
    }
    case control::AdminRequest::kVfList:
    case control::AdminRequest::kVfAttach:
    case control::AdminRequest::kVfDetach:
    case control::AdminRequest::kVfReset:
    case control::AdminRequest::kVfEnable:
      return HandleVf(ch, f.env);
    case control::AdminRequest::kMigrate: {
      const control::Migrate& m = r.migrate();
      Guest* g = guests_->Find(m.guest());
      absl::Status st =
          !g ? absl::NotFoundError(absl::StrCat("no guest named or numbered '", m.guest(), "'"))
          : !mig_ ? absl::FailedPreconditionError("this agent cannot migrate guests")
                  : mig_->Start(*g, m, AdminWaiter{ch.fd(), f.env.seq()});
      if (st.ok()) return absl::OkStatus();  // answered when the move ends
      a->mutable_error()->set_code(CodeFor(st));
      a->mutable_error()->set_message(std::string(st.message()));
      break;
    }
    case control::AdminRequest::kEvents:
      return HandleEvents(ch, f, std::move(rep));
    case control::AdminRequest::OP_NOT_SET:
      return refuse("admin_request names no operation (unknown op?)");
  }
  return ch.Send(rep);
}

absl::Status AdminService::HandleEvents(ControlChannel& ch, const ControlFrame& f, Envelope rep) {
  auto* a = rep.mutable_admin_reply();
  if (!events_) {
    a->mutable_error()->set_code(Error::INTERNAL);
    a->mutable_error()->set_message("this agent keeps no events");
    return ch.Send(rep);
  }
  // Subscribe before reading the history, so nothing falls between the two;
  // what is in both is sent once (last_sent).
  Follower fl;
  if (f.env.admin_request().events().follow()) fl.sub = events_->Subscribe(kFollowQueue);
  for (const AgentEvent& e : events_->Recent()) {
    FillEvent(e, a->add_events());
    fl.last_sent = e.seq;
  }
  NPA_RETURN_IF_ERROR(ch.Send(rep));
  if (fl.sub) {
    fl.seq = f.env.seq();
    followers_[ch.fd()] = std::move(fl);
    NPA_LOG(Info, "control: npactl session fd %d follows the agent's events", ch.fd());
  }
  return absl::OkStatus();
}

void AdminService::Forget(int fd) {
  followers_.erase(fd);
}

void AdminService::OnMigrationEnded(uint64_t guest_id, const std::string& guest,
                                    uint64_t duration_ns, const std::string& outcome) {
  if (!events_) return;
  AgentEvent e;
  e.kind = EventKind::kMigrationOut;
  e.guest_id = guest_id;
  e.guest = guest;
  e.duration_ns = duration_ns;
  e.detail = outcome;
  events_->Publish(std::move(e));
}

void AdminService::PumpEvents(const std::function<ControlChannel*(int)>& channel) {
  for (auto it = followers_.begin(); it != followers_.end();) {
    ControlChannel* ch = channel(it->first);
    if (!ch || !ch->failed().ok()) {
      it = followers_.erase(it);
      continue;
    }
    Follower& fl = it->second;
    // A reader that has not taken what was sent keeps its events in the
    // bounded subscription (oldest dropped and counted) rather than in an
    // ever longer send queue.
    if (ch->backlog_frames() > kFollowBacklogFrames) {
      ++it;
      continue;
    }
    std::vector<AgentEvent> got;
    const uint64_t missed = fl.sub->Take(&got);
    Envelope rep = NewReply(fl.seq);
    auto* a = rep.mutable_admin_reply();
    for (const AgentEvent& e : got) {
      if (e.seq <= fl.last_sent) continue;
      FillEvent(e, a->add_events());
      fl.last_sent = e.seq;
    }
    if (a->events_size() == 0 && missed == 0) {
      ++it;
      continue;
    }
    a->set_events_missed(missed);
    // A failed send (cut off, gone) is seen by the session's own read or
    // write handler, which closes it; forget it here.
    if (!ch->Send(rep).ok()) {
      it = followers_.erase(it);
      continue;
    }
    ++it;
  }
}

absl::Status AdminService::HandleVf(ControlChannel& ch, const Envelope& req) {
  const control::AdminRequest& r = req.admin_request();
  const uint64_t seq = req.seq();
  VfManager* vfs = vf_->vfs();
  Envelope rep = NewReply(seq);
  auto* a = rep.mutable_admin_reply();
  auto fail = [&](const absl::Status& st) {
    a->mutable_error()->set_code(CodeFor(st));
    a->mutable_error()->set_message(std::string(st.message()));
    return ch.Send(rep);
  };
  auto describe = [&](const std::string& bdf) {
    if (!vfs) return;
    auto v = vfs->Describe(bdf);
    if (v.ok()) FillVfInfo(*v, a->add_vfs());
  };
  const AdminWaiter waiter{ch.fd(), seq};
  switch (r.op_case()) {
    case control::AdminRequest::kVfList: {
      if (!vfs) {
        // No pool: still show the inventory (read-only).
        vf::SysfsRoot sys;
        RealVfioLayer none(sys);
        VfManager inv(sys, none, {});
        auto l = inv.List();
        if (!l.ok()) return fail(l.status());
        for (const auto& v : *l) FillVfInfo(v, a->add_vfs());
        return ch.Send(rep);
      }
      auto l = vfs->List();
      if (!l.ok()) return fail(l.status());
      for (const auto& v : *l) FillVfInfo(v, a->add_vfs());
      return ch.Send(rep);
    }
    case control::AdminRequest::kVfAttach: {
      const auto& x = r.vf_attach();
      Guest* g = guests_->Find(x.guest());
      if (!g)
        return fail(absl::NotFoundError(absl::StrCat("no guest named or numbered '", x.guest(), "'")));
      if (mig_ && mig_->IsMigrating(g->id))
        return fail(absl::FailedPreconditionError(
            absl::StrCat("guest ", g->name, " is migrating: attach refused")));
      if (absl::Status st = vf_->StartAttach(*g, x.pci(), x.timeout_ms(), waiter); !st.ok()) {
        describe(x.pci());
        return fail(st);
      }
      return absl::OkStatus();  // answered on vf_accept or its deadline
    }
    case control::AdminRequest::kVfDetach: {
      const auto& x = r.vf_detach();
      Guest* g = guests_->Find(x.guest());
      if (!g)
        return fail(absl::NotFoundError(absl::StrCat("no guest named or numbered '", x.guest(), "'")));
      std::string bdf = g->vf_bdf, msg;
      absl::Status st = vf_->StartDetach(*g, x.force(), x.timeout_ms(), waiter, &msg);
      if (!st.ok()) return fail(st);
      if (msg.empty()) return absl::OkStatus();  // answered on revoke_done or its deadline
      a->set_message(msg);
      describe(bdf);
      return ch.Send(rep);
    }
    case control::AdminRequest::kVfReset: {
      if (!vfs) return fail(absl::FailedPreconditionError("this agent has no VF pool (--vf)"));
      const std::string& pci = r.vf_reset().pci();
      if (absl::Status st = vfs->ResetVf(pci); !st.ok()) {
        describe(pci);
        return fail(st);
      }
      a->set_message(absl::StrCat("VF ", pci, " reset (VFIO_DEVICE_RESET)"));
      describe(pci);
      if (events_) {
        AgentEvent e;
        e.kind = EventKind::kVfReset;
        e.vf = pci;
        if (a->vfs_size() > 0) e.guest = a->vfs(0).guest();
        if (Guest* g = e.guest.empty() ? nullptr : guests_->Find(e.guest)) e.guest_id = g->id;
        e.detail = "npactl vf reset";
        events_->Publish(std::move(e));
      }
      return ch.Send(rep);
    }
    case control::AdminRequest::kVfEnable: {
      if (!vfs) return fail(absl::FailedPreconditionError("this agent has no VF pool (--vf)"));
      const auto& x = r.vf_enable();
      if (x.num_vfs() > 4096) return fail(absl::InvalidArgumentError("num_vfs above 4096"));
      auto v = vfs->EnableVfs(x.pf(), static_cast<int>(x.num_vfs()));
      if (!v.ok()) return fail(v.status());
      a->set_message(absl::StrCat(x.pf(), ": sriov_numvfs=", x.num_vfs(), " (",
                                  absl::StrJoin(*v, " "), ")"));
      return ch.Send(rep);
    }
    default:
      return fail(absl::InternalError("not a VF operation"));
  }
}

}  // namespace npa::agent
