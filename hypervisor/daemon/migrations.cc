// Migrations, the source side (A): start, offer, stop, commit, late frames,
// abort and finish. The worker, the posting and the timers are in
// migrations_runtime.cc; the destination side and Hello.resume in
// migrations_dest.cc.
#include "hypervisor/daemon/migrations.h"

#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/daemon/migrations_parts.h"
#include "hypervisor/daemon/session.h"

namespace npa::agent {
namespace {

using control::Envelope;
using migration::SourceEvent;
using migration::SourceState;

constexpr uint32_t kTakeEveryMs = 100;  // late frames: forwarded this often during the grace

uint64_t RandomId() {
  uint64_t v = 0;
  while (v == 0) {
    if (getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v))) v = MonotonicNs();
  }
  return v;
}

}  // namespace

absl::Status CheckResumeVrings(const control::Resume& r, uint32_t queue_pairs) {
  // The shell may run fewer queue pairs than its Hello allows: rings 0..n-1
  // of the first n/2 pairs, each once.
  const uint32_t n = static_cast<uint32_t>(r.vrings_size());
  if (n == 0 || n % 2 || n > 2 * queue_pairs)
    return absl::InvalidArgumentError(absl::StrCat("hello.resume has ", n, " vrings; want 2 per queue pair, 2..",
                                                   2 * queue_pairs));
  std::vector<bool> seen(n, false);
  for (const auto& v : r.vrings()) {
    if (v.vring() >= n)
      return absl::InvalidArgumentError(
          absl::StrCat("hello.resume vring ", v.vring(), " outside 0..", n - 1));
    if (seen[v.vring()])
      return absl::InvalidArgumentError(absl::StrCat("hello.resume lists vring ", v.vring(), " twice"));
    seen[v.vring()] = true;
    if (v.next_avail() > 65535 || v.used_idx() > 65535)
      return absl::InvalidArgumentError(absl::StrCat("hello.resume vring ", v.vring(), " index ",
                                                     std::max(v.next_avail(), v.used_idx()),
                                                     " outside 0..65535"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- source

Migrations::Source* Migrations::SourceById(uint64_t id) {
  auto it = sources_.find(id);
  return it == sources_.end() ? nullptr : it->second.get();
}

Migrations::Source* Migrations::SourceByGuest(uint64_t guest_id) {
  for (auto& [id, s] : sources_)
    if (s->guest_id == guest_id) return s.get();
  return nullptr;
}

const Migrations::Source* Migrations::SourceByGuest(uint64_t guest_id) const {
  for (const auto& [id, s] : sources_)
    if (s->guest_id == guest_id) return s.get();
  return nullptr;
}

bool Migrations::IsMigrating(uint64_t guest_id) const { return SourceByGuest(guest_id) != nullptr; }

bool Migrations::KeepsGuest(const Guest& g) const {
  return g.lc.state() == GuestState::kCommitted;
}

void Migrations::EraseSource(uint64_t id) {
  auto it = sources_.find(id);
  if (it == sources_.end()) return;
  if (it->second->worker) {
    it->second->worker->Stop();
    retired_.push_back(std::move(it->second->worker));
  }
  sources_.erase(it);
}

void Migrations::BeginPhase(Source& s, const std::string& name) {
  s.phase = name;
  s.phase_start_ns = MonotonicNs();
  NPA_LOG(Info, "migrate: guest %s -> %s: %s", s.guest.c_str(), s.to.c_str(), name.c_str());
}

void Migrations::EndPhase(Source& s, const std::string& detail) {
  if (s.phase.empty()) return;
  auto* p = &s.phases.emplace_back();
  p->set_name(s.phase);
  p->set_duration_us((MonotonicNs() - s.phase_start_ns) / 1000);
  p->set_detail(detail);
  NPA_LOG(Info, "migrate: guest %s: %s took %lu us%s%s", s.guest.c_str(), s.phase.c_str(),
          static_cast<unsigned long>(p->duration_us()), detail.empty() ? "" : ": ", detail.c_str());
  s.phase.clear();
  if (s.want_progress && s.waiter_live && !s.finished) {
    // The operator sees each phase as it ends, not only at the commit.
    Envelope rep;
    rep.set_seq(s.waiter.seq);
    auto* a = rep.mutable_admin_reply();
    a->set_agent_name(opts_.agent_name);
    a->set_progress(true);
    *a->add_phases() = *p;
    a->set_migration_state(migration::SourceStateName(s.m.state()));
    hooks_.reply(s.waiter, std::move(rep));
  }
}

control::MigrationState Migrations::BaseState(const Source& s, const Guest& g) const {
  control::MigrationState st;
  st.set_version(migration::kMigrationStateVersion);
  st.set_migration_id(s.id);
  st.set_source_agent(opts_.agent_name);
  st.set_name(g.name);
  st.set_mac(std::string(reinterpret_cast<const char*>(s.mac.data()), 6));
  st.set_mtu(opts_.mtu);
  // The queue pairs the shell runs (its Hello may allow more): the rings
  // committed are theirs.
  uint16_t ready = 0;
  const uint16_t nq = g.port ? g.port->num_queue_pairs() : 0;
  for (uint16_t q = 0; q < nq; q++) ready += g.port->QueueReady(q) ? 1 : 0;
  st.set_queue_pairs(ready ? std::min<uint16_t>(ready, g.queue_pairs) : g.queue_pairs);
  st.set_offloads(g.offloads);
  st.set_virtio_features(opts_.virtio_features);
  st.set_memory_bytes(g.regions ? g.regions->total_bytes() : 0);
  return st;
}

absl::Status Migrations::Start(Guest& g, const control::Migrate& req, AdminWaiter w) {
  if (!connector_)
    return absl::FailedPreconditionError(
        "this agent has no migration TLS configuration (npa-agent --tls-cert, --tls-key, "
        "--tls-ca): migrate refused");
  const std::string& to = req.to();
  const size_t colon = to.rfind(':');
  if (to.empty() || colon == std::string::npos || colon == 0 || colon + 1 == to.size())
    return absl::InvalidArgumentError(absl::StrCat("migrate: destination '", to, "' is not HOST:PORT"));
  if (g.transport != "control" || !g.mac)
    return absl::FailedPreconditionError(absl::StrCat(
        "guest ", g.name, " is attached by a plain vhost-user socket: only npa shells can migrate"));
  if (const Source* s = SourceByGuest(g.id))
    return absl::FailedPreconditionError(absl::StrCat("guest ", g.name, " is already migrating (",
                                                      migration::SourceStateName(s->m.state()), ")"));
  const GuestState gs = g.lc.state();
  if (gs != GuestState::kRunning && gs != GuestState::kVfActive)
    return absl::FailedPreconditionError(
        absl::StrCat("guest ", g.name, " is ", g.lc.name(), ": migrate needs RUNNING or VF_ACTIVE"));
  auto src = std::make_unique<Source>(g.name);
  Source& s = *src;
  s.id = RandomId();
  s.guest_id = g.id;
  s.guest = g.name;
  s.to = to;
  s.mac = *g.mac;
  s.waiter = w;
  s.want_progress = req.progress();
  s.start_ns = MonotonicNs();
  s.timeout_ms = req.timeout_ms() ? req.timeout_ms() : opts_.default_timeout_ms;
  s.deadline_ms = MonotonicMs() + s.timeout_ms;
  s.worker = std::make_unique<Worker>(g.name);
  sources_.emplace(s.id, std::move(src));
  NPA_LOG(Info, "migrate: guest %s (id %lu) to %s: migration %016lx, timeout %u ms", g.name.c_str(),
          static_cast<unsigned long>(g.id), to.c_str(), static_cast<unsigned long>(s.id),
          s.timeout_ms);
  if (gs == GuestState::kVfActive) {
    if (absl::Status st = s.m.Fire(SourceEvent::kRevoke); !st.ok()) {
      EraseSource(s.id);
      return st;
    }
    BeginPhase(s, "revoke");
    if (absl::Status st = hooks_.revoke_vf(g, s.id, std::min(s.timeout_ms, 10000u)); !st.ok()) {
      EraseSource(s.id);
      return absl::Status(st.code(), absl::StrCat("migrate: revoke the VF of guest ", g.name,
                                                  " first: ", st.message()));
    }
    return absl::OkStatus();
  }
  BeginOffer(s);
  return absl::OkStatus();
}

void Migrations::OnVfAnswer(uint64_t id, const absl::Status& st, const std::string& message) {
  Source* s = SourceById(id);
  if (!s) return;
  if (s->m.state() != SourceState::kRevokingVf) {
    NPA_LOG(Warn, "migrate: guest %s: VF answer in state %s ignored", s->guest.c_str(),
            migration::SourceStateName(s->m.state()));
    return;
  }
  if (!st.ok()) {
    Abort(*s, absl::StrCat("revoke of the VF failed: ", st.message()));
    return;
  }
  EndPhase(*s, message);
  Guest* g = guests_->Get(s->guest_id);
  if (!g || g->lc.state() != GuestState::kRunning) {
    Abort(*s, absl::StrCat("after the revoke the guest is ", g ? g->lc.name() : "gone",
                           ", not RUNNING"));
    return;
  }
  BeginOffer(*s);
}

void Migrations::BeginOffer(Source& s) {
  if (absl::Status st = s.m.Fire(SourceEvent::kOffer); !st.ok()) {
    Abort(s, std::string(st.message()));
    return;
  }
  Guest* g = guests_->Get(s.guest_id);
  if (!g) {
    Abort(s, "the guest went away");
    return;
  }
  s.state = BaseState(s, *g);
  BeginPhase(s, "offer");
  const uint64_t id = s.id;
  const int t = static_cast<int>(std::min(s.timeout_ms, opts_.step_timeout_ms));
  // TCP connect + TLS handshake: their own bound (Options::handshake_timeout_ms).
  const int tc = static_cast<int>(std::min(s.timeout_ms, opts_.handshake_timeout_ms));
  s.worker->Post([this, id, to = s.to, st = s.state, t, tc](std::unique_ptr<MigrationPeer>& peer) {
    absl::StatusOr<control::MigrationAccept> r;
    auto c = connector_(to, tc);
    if (!c.ok()) {
      r = absl::Status(c.status().code(),
                       absl::StrCat("connect to ", to, ": ", c.status().message()));
    } else {
      peer = std::move(*c);
      r = peer->Offer(st, t);
    }
    Post([this, id, r = std::move(r)]() mutable { OnOfferDone(id, std::move(r)); });
  });
}

void Migrations::OnOfferDone(uint64_t id, absl::StatusOr<control::MigrationAccept> acc) {
  Source* sp = SourceById(id);
  if (!sp || sp->m.state() != SourceState::kOffered) return;  // aborted meanwhile
  Source& s = *sp;
  if (!acc.ok()) {
    Abort(s, absl::StrCat("destination ", s.to, " refused: ", acc.status().message()));
    return;
  }
  if (acc->ticket().size() != kTicketLen || acc->control_path().empty()) {
    Abort(s, absl::StrCat("destination ", s.to, " accepted with a ", acc->ticket().size(),
                          "-byte ticket and control path '", acc->control_path(), "'"));
    return;
  }
  s.accept = *acc;
  EndPhase(s, absl::StrCat(acc->agent_name(), " reserved a slot, hold ", acc->hold_ms(), " ms"));
  Guest* g = guests_->Get(s.guest_id);
  if (!g) {
    Abort(s, "the guest went away");
    return;
  }
  ControlChannel* ch = hooks_.channel(g->session_fd);
  if (!ch) {
    Abort(s, "the guest's control session is gone");
    return;
  }
  if (absl::Status st = g->Move(GuestState::kStopping); !st.ok()) {
    Abort(s, absl::StrCat("guest is ", g->lc.name(), ": ", st.message()));
    return;
  }
  if (absl::Status st = s.m.Fire(SourceEvent::kAccepted); !st.ok()) {
    Abort(s, std::string(st.message()));
    return;
  }
  // Hold before the rings stop: a frame switched to the guest after this is
  // kept (and goes to B), none reaches a stopped ring. The announcements of
  // a revoke just before (the VF fell back) stop here: one after B's would
  // steer the switch back to this host.
  CancelAnnounce(*g);
  if (dp_) {
    if (absl::Status st = dp_->HoldMac(s.mac, opts_.max_held_frames); !st.ok()) {
      Abort(s, absl::StrCat("hold the guest's frames: ", st.message()));
      return;
    }
    s.holding = true;
  }
  BeginPhase(s, "stop");
  Envelope e;
  e.mutable_migrate_prepare()->set_migration_id(s.id);
  e.mutable_migrate_prepare()->set_timeout_ms(opts_.prepare_timeout_ms);
  s.prepare_deadline_ms = MonotonicMs() + opts_.prepare_timeout_ms;
  if (absl::Status st = ch->Send(e); !st.ok()) Abort(s, absl::StrCat("send migrate_prepare: ", st.message()));
}

absl::Status Migrations::OnMigrateReady(ControlChannel& ch, Guest& g, const Envelope& env) {
  const control::MigrateReady& r = env.migrate_ready();
  Source* sp = SourceByGuest(g.id);
  if (!sp || sp->id != r.migration_id() || sp->m.state() != SourceState::kStopping) {
    std::string msg = absl::StrCat("migrate_ready for migration ", r.migration_id(),
                                   " is not legal for guest '", g.name, "' in state ", g.lc.name(),
                                   sp ? absl::StrCat(" (migration ", sp->id, " is ",
                                                     migration::SourceStateName(sp->m.state()), ")")
                                      : std::string(" (no migration)"));
    SendError(ch, control::Error::UNEXPECTED, msg, env.seq());
    return absl::FailedPreconditionError(msg);
  }
  Source& s = *sp;
  if (r.has_error() && r.error().code() != control::Error::UNSPECIFIED) {
    Abort(s, absl::StrCat("the shell could not stop its rings: ", r.error().message()));
    return absl::OkStatus();
  }
  control::Resume rings;
  *rings.mutable_vrings() = r.vrings();
  if (absl::Status st = CheckResumeVrings(rings, s.state.queue_pairs()); !st.ok() ||
      static_cast<uint32_t>(r.vrings_size()) != 2 * s.state.queue_pairs()) {
    Abort(s, absl::StrCat("migrate_ready: ", st.ok() ? absl::StrCat(r.vrings_size(), " vrings for ",
                                                                   s.state.queue_pairs(), " queue pairs")
                                                     : std::string(st.message())));
    return absl::OkStatus();
  }
  if (absl::Status st = g.Move(GuestState::kStopCopy); !st.ok()) {
    Abort(s, std::string(st.message()));
    return absl::OkStatus();
  }
  if (absl::Status st = s.m.Fire(SourceEvent::kReady); !st.ok()) {
    Abort(s, std::string(st.message()));
    return absl::OkStatus();
  }
  EndPhase(s, absl::StrCat(r.vrings_size(), " rings stopped"));
  control::MigrationState st = s.state;
  *st.mutable_vrings() = r.vrings();
  *st.mutable_counters() = r.counters();
  s.state = st;
  BeginPhase(s, "commit");
  const uint64_t id = s.id;
  const int t = static_cast<int>(opts_.step_timeout_ms);
  s.worker->Post([this, id, st, t](std::unique_ptr<MigrationPeer>& peer) {
    absl::Status r2 = peer ? peer->Commit(st, t) : absl::UnavailableError("no channel");
    Post([this, id, r2] { OnCommitDone(id, r2); });
  });
  return absl::OkStatus();
}

void Migrations::OnCommitDone(uint64_t id, absl::Status st) {
  Source* sp = SourceById(id);
  if (!sp || sp->m.state() != SourceState::kStopCopy) return;
  Source& s = *sp;
  if (!st.ok()) {
    Abort(s, absl::StrCat("commit at ", s.to, ": ", st.message()));
    return;
  }
  Guest* g = guests_->Get(s.guest_id);
  ControlChannel* ch = g ? hooks_.channel(g->session_fd) : nullptr;
  if (!g || !ch) {
    Abort(s, "the guest went away before the commit");
    return;
  }
  if (absl::Status m = g->Move(GuestState::kCommitted); !m.ok()) {
    Abort(s, std::string(m.message()));
    return;
  }
  if (absl::Status m = s.m.Fire(SourceEvent::kCommitted); !m.ok()) {
    // The table and the guest disagree: a bug. The guest cannot go back.
    NPA_LOG(Error, "migrate: guest %s: %s", s.guest.c_str(), std::string(m.message()).c_str());
    g->Break(std::string(m.message()));
    Finish(s, absl::InternalError(std::string(m.message())), "");
    EraseSource(id);
    return;
  }
  // Its rings are B's now: stop polling them here.
  if (g->in_dataplane && dp_) {
    if (absl::Status r = dp_->RemoveGuest(g->id); !r.ok())
      NPA_LOG(Warn, "migrate: guest %s: remove from dataplane: %s", g->name.c_str(),
              std::string(r.message()).c_str());
    g->in_dataplane = false;
  }
  Envelope e;
  auto* c = e.mutable_migrate_commit();
  c->set_migration_id(s.id);
  c->set_control_path(s.accept.control_path());
  c->set_ticket(s.accept.ticket());
  c->set_agent_name(s.accept.agent_name());
  c->set_timeout_ms(s.accept.hold_ms());
  c->set_return_path(opts_.control_path);
  EndPhase(s, absl::StrCat("state with ", s.state.vrings_size(), " rings accepted by ",
                           s.accept.agent_name()));
  BeginPhase(s, "switch");
  const uint64_t now = MonotonicMs();
  s.grace_end_ms = now + opts_.grace_ms;
  s.next_take_ms = now;
  s.hold_end_ms = now + s.accept.hold_ms() + opts_.grace_ms + 1000;
  if (absl::Status r = ch->Send(e); !r.ok())
    NPA_LOG(Warn, "migrate: guest %s: send migrate_commit: %s (the shell returns or the hold ends)",
            s.guest.c_str(), std::string(r.message()).c_str());
  ForwardLate(s, false);
}

void Migrations::ForwardLate(Source& s, bool last) {
  if (s.late_last_sent) return;
  Dataplane::HeldFrames h;
  if (dp_ && s.holding) h = last ? dp_->ReleaseMac(s.mac) : dp_->TakeHeld(s.mac);
  if (last) s.holding = false;
  s.next_take_ms = MonotonicMs() + kTakeEveryMs;
  if (!last && h.frames.empty() && h.dropped == 0) return;
  if (last) s.late_last_sent = true;
  const uint64_t id = s.id, dropped = h.dropped;
  const size_t n = h.frames.size();
  const int done_ms = static_cast<int>(s.accept.hold_ms()) + 1000;
  s.worker->Post([this, id, n, dropped, last, done_ms, frames = std::move(h.frames)](
                     std::unique_ptr<MigrationPeer>& peer) mutable {
    absl::StatusOr<uint64_t> r = peer ? peer->SendLateFrames(id, std::move(frames), dropped, last)
                                      : absl::UnavailableError("no channel");
    Post([this, id, n, dropped, r] { OnLateSent(id, n, r, dropped); });
    if (!last) return;
    absl::StatusOr<control::MigrationDone> d =
        peer ? peer->AwaitDone(done_ms) : absl::UnavailableError("no channel");
    Post([this, id, d = std::move(d)]() mutable { OnDone(id, std::move(d)); });
  });
}

void Migrations::OnLateSent(uint64_t id, size_t n, absl::StatusOr<uint64_t> oversize, uint64_t dropped) {
  Source* s = SourceById(id);
  if (!s) return;
  if (oversize.ok()) {
    s->late_sent += n - std::min<uint64_t>(n, *oversize);
    s->late_lost += dropped + std::min<uint64_t>(n, *oversize);
  } else {
    s->late_lost += n + dropped;
    NPA_LOG(Warn, "migrate: guest %s: %zu late frames not forwarded (counted lost): %s",
            s->guest.c_str(), n, std::string(oversize.status().message()).c_str());
  }
}

void Migrations::OnDone(uint64_t id, absl::StatusOr<control::MigrationDone> done) {
  Source* sp = SourceById(id);
  if (!sp) return;
  Source& s = *sp;
  if (s.m.state() != SourceState::kCommitted) return;  // the shell came back meanwhile
  const std::string late = absl::StrCat("late frames: ", s.late_sent, " forwarded, ", s.late_lost, " lost");
  if (done.ok() && done->resumed()) {
    if (absl::Status st = s.m.Fire(SourceEvent::kDone); !st.ok())
      NPA_LOG(Error, "migrate: guest %s: %s", s.guest.c_str(), std::string(st.message()).c_str());
    EndPhase(s, absl::StrCat("resumed on ", s.accept.agent_name(), "; ", late));
    Finish(s, absl::OkStatus(),
           absl::StrCat("guest ", s.guest, " migrated to ", s.accept.agent_name(), " (", s.to,
                        "); ", late));
    const uint64_t gid = s.guest_id;
    const std::string why = absl::StrCat("migrated to ", s.accept.agent_name());
    EraseSource(id);
    hooks_.close_guest(gid, why);
    return;
  }
  const std::string why = done.ok() ? absl::StrCat("destination did not resume it: ", done->reason())
                                    : std::string(done.status().message());
  if (absl::Status st = s.m.Fire(SourceEvent::kFail); !st.ok())
    NPA_LOG(Error, "migrate: guest %s: %s", s.guest.c_str(), std::string(st.message()).c_str());
  EndPhase(s, why);
  NPA_LOG(Warn, "migrate: guest %s: committed but %s; keeping its slot until the hold ends",
          s.guest.c_str(), why.c_str());
  Finish(s, absl::UnavailableError(absl::StrCat(
                "guest ", s.guest, " was committed to ", s.to, " but ", why,
                "; its shell comes back here with the ticket or the guest is closed when the hold "
                "ends; ", late)),
         "");
}

void Migrations::Abort(Source& s, const std::string& reason) {
  const SourceState was = s.m.state();
  if (!migration::SourceCanAbort(was)) {
    NPA_LOG(Error, "migrate: guest %s: cannot abort in state %s (%s)", s.guest.c_str(),
            migration::SourceStateName(was), reason.c_str());
    return;
  }
  if (absl::Status st = s.m.Fire(SourceEvent::kAbort); !st.ok())
    NPA_LOG(Error, "migrate: guest %s: %s", s.guest.c_str(), std::string(st.message()).c_str());
  NPA_LOG(Warn, "migrate: guest %s -> %s aborted in %s: %s", s.guest.c_str(), s.to.c_str(),
          migration::SourceStateName(was), reason.c_str());
  Guest* g = guests_->Get(s.guest_id);
  if (g && (was == SourceState::kStopping || was == SourceState::kStopCopy)) {
    if (ControlChannel* ch = hooks_.channel(g->session_fd)) {
      Envelope e;
      e.mutable_migrate_abort()->set_migration_id(s.id);
      e.mutable_migrate_abort()->set_reason(reason);
      if (absl::Status st = ch->Send(e); !st.ok())
        NPA_LOG(Warn, "migrate: guest %s: send migrate_abort: %s", s.guest.c_str(),
                std::string(st.message()).c_str());
    }
    if (g->lc.CanFire(GuestState::kRunning)) {
      if (absl::Status st = g->Move(GuestState::kRunning); !st.ok()) g->Break(std::string(st.message()));
    }
  }
  if (s.holding && dp_) {
    Dataplane::HeldFrames h = dp_->ReleaseMac(s.mac);
    s.holding = false;
    s.late_lost += h.dropped;
    if (!h.frames.empty()) {
      if (g) {
        // Delivered here once the shell restarted its rings (Tick).
        const uint64_t now = MonotonicMs();
        injects_.push_back(Inject{g->id, std::move(h.frames), now + 10, now + 5000,
                                  "held during an aborted migration"});
      } else {
        s.late_lost += h.frames.size();
      }
    }
  }
  if (!s.phase.empty()) EndPhase(s, absl::StrCat("aborted: ", reason));
  Finish(s, absl::AbortedError(absl::StrCat("migration of guest ", s.guest, " to ", s.to,
                                            " aborted in ", migration::SourceStateName(was), ": ",
                                            reason, "; the guest runs on this agent")),
         "");
  EraseSource(s.id);
}

void Migrations::Finish(Source& s, const absl::Status& st, const std::string& message) {
  if (s.finished) return;
  s.finished = true;
  // The move's end is told whether or not its npactl still waits: an
  // operator who pressed ^C still gets migration_out in the events.
  if (hooks_.done)
    hooks_.done(s.guest_id, s.guest, MonotonicNs() - s.start_ns,
                !st.ok() ? absl::StrCat("failed: ", st.message())
                         : std::string(migration::SourceStateName(s.m.state())));
  if (!s.waiter_live) return;
  s.waiter_live = false;
  Envelope rep;
  rep.set_seq(s.waiter.seq);
  auto* a = rep.mutable_admin_reply();
  a->set_agent_name(opts_.agent_name);
  if (!st.ok()) {
    a->mutable_error()->set_code(st.code() == absl::StatusCode::kNotFound ? control::Error::NOT_FOUND
                                 : st.code() == absl::StatusCode::kInternal ? control::Error::INTERNAL
                                                                            : control::Error::BUSY);
    a->mutable_error()->set_message(std::string(st.message()));
  }
  a->set_message(message.empty() ? std::string(st.message()) : message);
  for (const auto& p : s.phases) *a->add_phases() = p;
  a->set_migration_state(migration::SourceStateName(s.m.state()));
  hooks_.reply(s.waiter, std::move(rep));
}

void Migrations::ForgetAdmin(int fd) {
  for (auto& [id, s] : sources_)
    if (s->waiter.fd == fd) s->waiter_live = false;
}

void Migrations::OnGuestClosing(Guest& g, const std::string& why) {
  if (Source* s = SourceByGuest(g.id)) {
    if (migration::SourceCanAbort(s->m.state())) {
      Abort(*s, absl::StrCat("the guest went away: ", why));
    } else {
      // COMMITTED/ERROR: the hold ended or B took it; what is still held is lost.
      if (s->holding && dp_) {
        Dataplane::HeldFrames h = dp_->ReleaseMac(s->mac);
        s->holding = false;
        s->late_lost += h.frames.size() + h.dropped;
      }
      if (!s->phase.empty()) EndPhase(*s, why);
      Finish(*s, absl::UnavailableError(absl::StrCat("guest ", s->guest, " closed: ", why)), "");
      EraseSource(s->id);
    }
  }
  if (Dest* d = DestByGuest(g.id)) Release(*d, absl::StrCat("the guest closed: ", why));
  std::erase_if(injects_, [&](const Inject& i) { return i.guest_id == g.id; });
  CancelAnnounce(g);
}

}  // namespace npa::agent
