// hypervisor/daemon/control_server_guests.cc — ControlServer's guests
// (control_server.h): readiness of each guest's vhost-user back end (the
// guest table's steps to RUNNING and into the dataplane), the free VF
// offered after a migration, and the way out (CloseGuest: CLOSING, out of
// the dataplane, Bye, CLOSED). Split out of control_server.cc, which keeps
// the event loop and the sessions; admission is control_server_accept.cc.
// Same thread rules: the control thread only.
#include "hypervisor/daemon/control_server.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"

namespace npa::agent {

using control::Envelope;

void ControlServer::OfferFreeVf(Guest& g) {
  LogScope log_scope(g.name);
  if (!opts_.vfs) return;
  auto l = opts_.vfs->List();
  if (l.ok()) {
    for (const VfView& v : *l) {
      if (!v.in_pool || v.state != "FREE" || !g.lc.CanFire(GuestState::kVfOffered)) continue;
      absl::Status st = vf_.StartAttach(g, v.fn.bdf, 0, AdminWaiter{kMigrationWaiterFd, 0});
      if (st.ok()) {
        NPA_LOG(Info, "control: guest %s: offering free VF %s after its migration", g.name.c_str(),
                v.fn.bdf.c_str());
        want_vf_.erase(g.id);
        return;
      }
      NPA_LOG(Info, "control: guest %s: VF %s not offered: %s", g.name.c_str(), v.fn.bdf.c_str(),
              std::string(st.message()).c_str());
    }
  }
  want_vf_.insert(g.id);  // Housekeeping tries again when one frees up
}

void ControlServer::OnGuestPortReadable(uint64_t guest_id) {
  Guest* g = guests_.Get(guest_id);
  if (!g) return;
  LogScope log_scope(g->name, g->vf_bdf);
  absl::Status st = g->port->OnReadable();
  if (!st.ok() && mig_.KeepsGuest(*g)) {
    // COMMITTED: the shell left for the destination; its back end here is
    // done, the slot stays for the hold.
    loop_.Unwatch(g->port->fd());
    g->port.reset();
    NPA_LOG(Info, "control: guest %s: vhost-user connection closed after the commit (%s)",
            g->name.c_str(), std::string(st.message()).c_str());
    return;
  }
  if (!st.ok()) {
    bool closed = absl::IsAborted(st);
    CloseGuest(guest_id,
               closed ? "vhost-user front end closed the connection"
                      : absl::StrCat("vhost-user: ", st.message()),
               /*broken=*/!closed);
    return;
  }
  UpdateReadiness(*g);
}

void ControlServer::UpdateReadiness(Guest& g) {
  LogScope log_scope(g.name, g.vf_bdf);
  if (!g.port) return;  // a reservation, or a committed guest whose shell left
  if (g.port->broken()) {
    CloseGuest(g.id, absl::StrCat("back end broken: ", g.port->broken_reason()), /*broken=*/true);
    return;  // g is gone
  }
  // A step the table refuses here (it was asked first, so only a bug) closes
  // the guest as broken: BROKEN -> CLOSING.
  auto step = [&](GuestState to) {
    absl::Status s = g.Move(to);
    if (!s.ok()) CloseGuest(g.id, std::string(s.message()), /*broken=*/true);
    return s.ok();
  };
  bool any_ready = false;
  const uint16_t nq = g.port->num_queue_pairs();
  for (uint16_t q = 0; q < nq && !any_ready; q++) any_ready = g.port->QueueReady(q);
  if (g.lc.state() == GuestState::kResuming) {
    // Every ring the guest has must be back before it runs (the shell set
    // each one's base from its Hello.resume).
    bool all = nq >= g.queue_pairs;
    for (uint16_t q = 0; q < g.queue_pairs && all; q++) all = g.port->QueueReady(q);
    if (!all) return;
    if (dp_) {
      if (absl::Status s = dp_->AddGuest(g.id, g.port, g.mac, g.rss); !s.ok()) {
        CloseGuest(g.id, absl::StrCat("add to dataplane: ", s.message()), /*broken=*/true);
        return;
      }
      g.in_dataplane = true;
    }
    if (!step(GuestState::kRunning)) return;
    NPA_LOG(Info, "control: guest %s: resumed, RUNNING", g.name.c_str());
    Publish(EventKind::kMigrationIn, g, "resumed with its ticket", mig_.SinceReservedNs(g.id));
    Publish(EventKind::kGuestUp, g, "resumed");
    OnGuestRunning(g);
    mig_.OnResumed(g);
    return;
  }
  if (g.lc.CanFire(GuestState::kReady) && g.port->QueueReady(0)) {
    if (!step(GuestState::kReady)) return;
    limits_.Ready(g.session_fd);  // no negotiation deadline any more
    if (g.port->fd() >= 0) loop_.ClearDeadline(g.port->fd());
    // The pairs ready now, of those the back end offers: a QEMU guest with
    // queues=2 on a 16-pair agent says "2 of 16"; more may start later.
    uint16_t ready = 0;
    for (uint16_t q = 0; q < nq; q++) ready += g.port->QueueReady(q) ? 1 : 0;
    NPA_LOG(Info, "control: guest %s: READY (%u of %u queue pairs ready)", g.name.c_str(), ready, nq);
  }
  // Into the dataplane on READY -> RUNNING. (The VF states' arcs to RUNNING
  // belong to guests the dataplane already polls, so in_dataplane tells them
  // apart.)
  if (g.lc.CanFire(GuestState::kRunning) && !g.in_dataplane && dp_) {
    absl::Status s =
        dp_->AddGuest(g.id, g.port, g.transport == "control" ? g.mac : std::nullopt, g.rss);
    if (!s.ok()) {
      NPA_LOG(Error, "control: guest %s: add to dataplane: %s", g.name.c_str(),
              std::string(s.message()).c_str());
      CloseGuest(g.id, absl::StrCat("add to dataplane: ", s.message()), /*broken=*/true);
      return;
    }
    g.in_dataplane = true;
    if (!step(GuestState::kRunning)) return;
    NPA_LOG(Info, "control: guest %s: RUNNING", g.name.c_str());
    Publish(EventKind::kGuestUp, g, g.transport);
    OnGuestRunning(g);
  } else if (g.lc.CanFire(GuestState::kNegotiating) && !any_ready) {
    // The front end stopped every ring (GET_VRING_BASE, reset): stop polling
    // until it starts them again.
    if (g.in_dataplane && dp_) {
      if (absl::Status s = dp_->RemoveGuest(g.id); !s.ok())
        NPA_LOG(Warn, "control: guest %s: remove from dataplane: %s", g.name.c_str(),
                std::string(s.message()).c_str());
    }
    g.in_dataplane = false;
    if (!step(GuestState::kNegotiating)) return;
    // Negotiating again: the deadline of a Hello applies again, from now
    // (the session's, and a vhost-user socket guest's back end's).
    limits_.Unready(g.session_fd);
    if (g.port->fd() >= 0 && g.session_fd < 0 &&
        !loop_.SetDeadline(g.port->fd(), MonotonicMs() + opts_.session_limits.negotiate_timeout_ms).ok())
      NPA_LOG(Error, "control: guest %s: no negotiation deadline armed", g.name.c_str());
    NPA_LOG(Info, "control: guest %s: queues stopped, NEGOTIATING", g.name.c_str());
  }
}

void ControlServer::CloseBrokenGuests() {
  for (uint64_t id : guests_.ids()) {
    Guest* g = guests_.Get(id);
    if (g && g->lc.state() == GuestState::kBroken)
      CloseGuest(id, g->broken_reason.empty() ? "broken" : g->broken_reason, /*broken=*/true);
  }
}

void ControlServer::CloseGuest(uint64_t guest_id, const std::string& why, bool broken) {
  Guest* gp = guests_.Get(guest_id);
  if (!gp) return;
  Guest& g = *gp;
  LogScope log_scope(g.name, g.vf_bdf);  // a copy: g is erased below
  vf_.OnGuestClosing(g, why);
  mig_.OnGuestClosing(g, why);
  want_vf_.erase(guest_id);
  if (broken) g.Break(why);
  // CLOSING (from BROKEN or any live state), then CLOSED, is the table's way
  // out. The guest is removed either way; a step the table refuses is
  // logged with both states by Move and again below.
  absl::Status out = g.Move(GuestState::kClosing);
  if (g.in_dataplane && dp_) {
    absl::Status s = dp_->RemoveGuest(g.id);
    if (!s.ok()) {
      // The dataplane may still touch the port: keep it alive for good
      // rather than free memory under it.
      NPA_LOG(Error, "control: guest %s: remove from dataplane: %s (leaking its back end)",
              g.name.c_str(), std::string(s.message()).c_str());
      new std::shared_ptr<GuestPort>(g.port);
    }
  }
  if (g.port) loop_.Unwatch(g.port->fd());
  auto sit = sessions_.find(g.session_fd);
  if (g.session_fd >= 0 && sit != sessions_.end()) {
    Envelope bye;
    bye.mutable_bye()->set_reason(why);
    sit->second.ch->Send(bye).IgnoreError();  // best effort: the session closes now
    limits_.Release(g.session_fd);
    loop_.Unwatch(g.session_fd);
    sessions_.erase(sit);
  }
  if (out.ok()) out = g.Move(GuestState::kClosed);
  if (!out.ok())
    NPA_LOG(Error, "control: guest %s (id %lu) removed outside its lifecycle: %s", g.name.c_str(),
            static_cast<unsigned long>(g.id), std::string(out.message()).c_str());
  if (broken)
    NPA_LOG(Warn, "control: guest %s (id %lu) closed: %s", g.name.c_str(),
            static_cast<unsigned long>(g.id), why.c_str());
  else
    NPA_LOG(Info, "control: guest %s (id %lu) closed: %s", g.name.c_str(),
            static_cast<unsigned long>(g.id), why.c_str());
  Publish(EventKind::kGuestDown, g, why);
  guests_.Erase(guest_id);
  SaveRestartRoster();
}

void ControlServer::OnGuestRunning(Guest& g) {
  vf_.Readopt(g);  // a shell back from an agent restart may still drive its VF
  SaveRestartRoster();
  gate_.OnGuestRunning(g.name);
}

}  // namespace npa::agent
