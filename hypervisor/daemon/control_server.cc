#include "hypervisor/daemon/control_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

}  // namespace

namespace {
Migrations::Options MigrationOptions(const ControlServer::Options& o) {
  Migrations::Options m;
  m.agent_name = o.agent_name;
  m.control_path = o.control_path;
  m.grace_ms = o.migration_grace_ms;
  m.hold_ms = o.migration_hold_ms;
  m.handshake_timeout_ms = o.migration_handshake_timeout_ms;
  m.rarp_gaps_ms = o.rarp_gaps_ms;
  m.max_guests = o.max_guests;
  m.offloads = o.migration_offloads;
  m.virtio_features = o.features;
  m.max_queue_pairs = o.max_queue_pairs;
  m.mtu = o.mtu;
  m.max_guest_memory = o.max_guest_memory;
  return m;
}
}  // namespace

ControlServer::ControlServer(Options opts, Dataplane* dataplane, PortFactory factory)
    : opts_(std::move(opts)),
      dp_(dataplane),
      factory_(std::move(factory)),
      limits_(opts_.session_limits, &loop_),
      guests_(opts_.agent_name),
      vf_(VfAttachments::Options{opts_.vf_accept_timeout_ms, opts_.vf_revoke_timeout_ms,
                                 opts_.vf_force_grace_ms, kMaxRegions, opts_.max_guest_memory},
          opts_.vfs, &guests_,
          VfAttachments::Hooks{
              [this](int fd) { return Channel(fd); },
              [this](const AdminWaiter& w, const absl::Status& st, const std::string& m) {
                AnswerAdmin(w, st, m);
              }}),
      mig_(MigrationOptions(opts_), &guests_, dp_, opts_.migration_connector,
           Migrations::Hooks{
               [this](int fd) { return Channel(fd); },
               [this](const AdminWaiter& w, Envelope rep) {
                 auto it = sessions_.find(w.fd);
                 if (it == sessions_.end() || it->second.role != SessionRole::kAdmin) return;
                 it->second.ch->Send(rep).IgnoreError();  // npactl may have left
               },
               [this](Guest& g, uint64_t id, uint32_t timeout_ms) -> absl::Status {
                 std::string msg;
                 NPA_RETURN_IF_ERROR(vf_.StartDetach(g, /*force=*/false, timeout_ms,
                                                     AdminWaiter{kMigrationWaiterFd, id}, &msg));
                 if (!msg.empty()) mig_.OnVfAnswer(id, absl::OkStatus(), msg);
                 return absl::OkStatus();
               },
               [this](uint64_t id, const std::string& why) { CloseGuest(id, why, /*broken=*/false); },
               [this](Guest& g) { OfferFreeVf(g); },
               nullptr,
               [this](uint64_t guest_id, const std::string& guest, uint64_t duration_ns,
                      const std::string& outcome) {
                 admin_.OnMigrationEnded(guest_id, guest, duration_ns, outcome);
               }}),
      admin_(opts_.agent_name, &guests_, dp_, &vf_, &mig_, &events_),
      gate_(opts_.restart_roster_path, opts_.restart_grace_ms, dp_) {
  // The side that now carries a guest's MAC announces it (docs/migration.md
  // "MAC steering"): off the VF, this agent's uplink sends the RARPs; back
  // on the VF, the VF's own traffic teaches the switch, so a pending
  // schedule from here would pull the MAC back and is cancelled.
  vf_.set_events(&events_);
  vf_.set_path_changed([this](const Guest& g, bool on_vf) {
    if (on_vf) {
      mig_.CancelAnnounce(g);
    } else {
      mig_.AnnounceMac(g);
    }
    // The roster records the VF a guest uses (guest_registry.h), so that
    // the next agent after a kill -9 re-adopts it.
    SaveRestartRoster();
  });
  loop_.OnReadable(FdKind::kControlListener, [this](int fd, uint64_t) {
    // The migrations' eventfd rides on this kind (FdLoop has no kind for a
    // wakeup): work posted by the listener's and the workers' threads.
    if (fd == mig_.wake_fd()) {
      mig_.OnWake();
      return;
    }
    AcceptControl(fd);
  });
  loop_.OnReadable(FdKind::kVhostListener, [this](int fd, uint64_t) { AcceptVhost(fd); });
  loop_.OnReadable(FdKind::kSession, [this](int fd, uint64_t) { OnSessionReadable(fd); });
  loop_.OnReadable(FdKind::kGuestPort, [this](int, uint64_t id) { OnGuestPortReadable(id); });
  loop_.OnWritable(FdKind::kSession, [this](int fd, uint64_t) {
    // A failed flush cuts the peer off and shuts its socket down: the read
    // handler then closes the session with the reason.
    if (ControlChannel* ch = Channel(fd)) ch->OnWritable().IgnoreError();
  });
  loop_.OnDeadline(FdKind::kSession, [this](int fd, uint64_t) {
    ControlChannel* ch = Channel(fd);
    if (!ch) return;
    const std::string why = limits_.TimeoutReason(fd);
    SendError(*ch, Error::LIMIT, why);
    CloseSession(fd, why);
  });
  loop_.OnDeadline(FdKind::kGuestPort, [this](int, uint64_t id) {
    CloseGuest(id, absl::StrCat("vhost-user front end not ready within ",
                                opts_.session_limits.negotiate_timeout_ms, " ms"),
               /*broken=*/true);
  });
}

ControlServer::~ControlServer() { Shutdown(); }

void ControlServer::Publish(EventKind k, const Guest& g, std::string detail, uint64_t duration_ns) {
  AgentEvent e;
  e.kind = k;
  e.guest_id = g.id;
  e.guest = g.name;
  e.vf = g.vf_bdf;
  e.duration_ns = duration_ns;
  e.detail = std::move(detail);
  events_.Publish(std::move(e));
}

ControlChannel* ControlServer::Channel(int fd) {
  auto it = sessions_.find(fd);
  return it == sessions_.end() ? nullptr : it->second.ch.get();
}

void ControlServer::AnswerAdmin(const AdminWaiter& w, const absl::Status& st,
                                const std::string& message) {
  if (w.fd == kMigrationWaiterFd) {
    mig_.OnVfAnswer(w.seq, st, message);
    return;
  }
  auto it = sessions_.find(w.fd);
  if (it == sessions_.end() || it->second.role != SessionRole::kAdmin) return;
  admin_.Answer(*it->second.ch, w, st, message);
}

absl::Status ControlServer::Listen() {
  NPA_RETURN_IF_ERROR(loop_.Open());
  NPA_RETURN_IF_ERROR(mig_.Open());
  NPA_RETURN_IF_ERROR(loop_.Watch(mig_.wake_fd(), FdKind::kControlListener));
  auto listen = [&](const std::string& path, FdKind kind, const char* what) -> absl::Status {
    auto l = ListenUnix(path);
    if (!l.ok())
      return absl::Status(l.status().code(),
                          absl::StrCat("listen on ", what, " ", path, ": ", l.status().message()));
    if (absl::Status s = loop_.Watch(l->get(), kind); !s.ok())
      return absl::Status(s.code(), absl::StrCat(what, " ", path, ": ", s.message()));
    listeners_.emplace_back(std::move(*l), path);
    return absl::OkStatus();
  };
  if (!opts_.control_path.empty()) {
    NPA_RETURN_IF_ERROR(listen(opts_.control_path, FdKind::kControlListener, "control socket"));
    NPA_LOG(Info, "control: listening on %s", opts_.control_path.c_str());
  }
  admin_path_ = opts_.admin_path.empty() && !opts_.control_path.empty()
                    ? opts_.control_path + ".admin"
                    : opts_.admin_path;
  if (!admin_path_.empty()) {
    if (admin_path_ == opts_.control_path)
      return absl::InvalidArgumentError(
          absl::StrCat("admin socket ", admin_path_, " is the control socket; they must differ"));
    // ListenUnix creates it 0660: narrow it to the agent's user before the
    // first accept (a peer that connected in between is still checked by
    // SO_PEERCRED in AcceptControl).
    NPA_RETURN_IF_ERROR(listen(admin_path_, FdKind::kControlListener, "admin socket"));
    admin_listen_fd_ = listeners_.back().first.get();
    if (chmod(admin_path_.c_str(), 0600) < 0)
      return absl::InternalError(
          absl::StrCat("chmod 0600 admin socket ", admin_path_, ": ", strerror(errno)));
    NPA_LOG(Info, "control: admin socket (npactl) on %s", admin_path_.c_str());
  }
  for (std::string path : opts_.vhost_user_paths) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/vhost-user.sock";
    NPA_RETURN_IF_ERROR(listen(path, FdKind::kVhostListener, "vhost-user socket"));
    NPA_LOG(Info, "control: vhost-user listener on %s", path.c_str());
  }
  gate_.Load();
  vf_.AdoptFromRoster(gate_.loaded());
  last_link_up_ = LinkUp();
  return absl::OkStatus();
}

absl::Status ControlServer::Run(const std::atomic<bool>* stop) {
  while (!stop->load()) NPA_RETURN_IF_ERROR(RunOnce(opts_.housekeeping_ms));
  return absl::OkStatus();
}

absl::Status ControlServer::RunOnce(int timeout_ms) {
  // A migration's deadline (RARP schedule, late frames) may come sooner.
  const int mig_ms = mig_.MsUntilNextDeadline();
  if (mig_ms >= 0 && (timeout_ms < 0 || mig_ms < timeout_ms)) timeout_ms = mig_ms;
  // The restart gate opens on time.
  if (const int gate_ms = gate_.MsUntilDeadline(MonotonicMs());
      gate_ms >= 0 && (timeout_ms < 0 || gate_ms < timeout_ms))
    timeout_ms = gate_ms;
  NPA_RETURN_IF_ERROR(loop_.RunOnce(timeout_ms).status());
  mig_.Tick();
  gate_.Tick(MonotonicMs());
  vf_.CheckDeadlines();
  CloseBrokenGuests();
  admin_.PumpEvents([this](int fd) { return Channel(fd); });
  if (MonotonicMs() - last_housekeeping_ms_ >= static_cast<uint64_t>(opts_.housekeeping_ms)) {
    last_housekeeping_ms_ = MonotonicMs();
    Housekeeping();
  }
  return absl::OkStatus();
}

void ControlServer::OnSessionReadable(int fd) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  absl::Status st;
  // Frames left from the last turn first: reading more before they are
  // handled would only pile them up (and trip the two-frame read bound).
  if (!s.ch->HasFrame()) st = s.ch->OnReadable();
  if (!st.ok()) {
    if (absl::IsAborted(st)) {
      CloseSession(fd, "peer closed the control connection");
      return;
    }
    SendError(*s.ch, CodeForCodecError(st), std::string(st.message()));
    CloseSession(fd, std::string(st.message()));
    return;
  }
  for (uint32_t handled = 0;; handled++) {
    // One read can hold over a thousand tiny frames: a peer gets at most
    // kFramesPerWake handled per turn, then the other ready fds have theirs
    // (fd_loop.h, "Pending"), so no session can hold the control thread.
    if (handled == kFramesPerWake) {
      if (s.ch->HasFrame()) loop_.MarkPending(fd).IgnoreError();
      return;
    }
    auto f = s.ch->Pop();
    if (!f.ok()) {
      SendError(*s.ch, CodeForCodecError(f.status()), std::string(f.status().message()));
      CloseSession(fd, std::string(f.status().message()));
      return;
    }
    if (!f->has_value()) return;
    st = HandleFrame(s, **f);
    if (!st.ok()) {
      CloseSession(fd, std::string(st.message()));
      return;
    }
    limits_.OnFrame(fd, s.role);
    // A session that follows the events sends nothing more: no idle
    // deadline for it (it stays within the per-peer session caps).
    if (admin_.following(fd)) limits_.Ready(fd);
  }
}

absl::Status ControlServer::HandleFrame(Session& s, ControlFrame& f) {
  const Envelope& env = f.env;
  const bool admin_socket = admin_socket_fds_.count(s.ch->fd()) != 0;
  switch (s.role) {
    case SessionRole::kUndecided:
      if (admin_socket) {
        if (env.has_admin_request()) {
          s.role = SessionRole::kAdmin;
          return admin_.Handle(*s.ch, f);
        }
        SendError(*s.ch, Error::DENIED,
                  absl::StrCat("the admin socket takes only admin_request (npactl); guests connect "
                               "to the control socket, got ",
                               BodyName(env)),
                  env.seq());
        return absl::PermissionDeniedError(absl::StrCat(BodyName(env), " on the admin socket"));
      }
      if (env.has_hello()) return HandleHello(s, f);
      if (env.has_admin_request()) {
        SendError(*s.ch, Error::DENIED,
                  absl::StrCat("operator requests go to the admin socket ",
                               admin_path_.empty() ? "(this agent has none)" : admin_path_),
                  env.seq());
        return absl::PermissionDeniedError("admin_request on the guest control socket");
      }
      SendError(*s.ch, Error::UNEXPECTED,
                absl::StrCat("first message must be hello or admin_request, got ", BodyName(env)),
                env.seq());
      return absl::FailedPreconditionError(absl::StrCat("unexpected first message ", BodyName(env)));
    case SessionRole::kAdmin:
      if (env.has_admin_request()) return admin_.Handle(*s.ch, f);
      SendError(*s.ch, Error::UNEXPECTED,
                absl::StrCat("an admin session takes only admin_request, got ", BodyName(env)),
                env.seq());
      return absl::FailedPreconditionError("unexpected message in admin session");
    case SessionRole::kGuest: {
      Guest* g = guests_.Get(s.guest_id);
      if (!g) return absl::InternalError("guest session without a guest");
      return HandleGuestFrame(s, *g, f);
    }
  }
  return absl::InternalError("unknown session role");
}

absl::Status ControlServer::HandleGuestFrame(Session& s, Guest& g, ControlFrame& f) {
  LogScope log_scope(g.name, g.vf_bdf);  // every line below concerns g (common/log.h)
  NPA_RETURN_IF_ERROR(RefuseUnexpectedFds(*s.ch, f));
  const Envelope& env = f.env;
  if (env.has_admin_request()) {
    // A guest may not act as the operator; its session and guest go on
    // unchanged (issue 9 part 1).
    NPA_LOG(Warn, "control: guest %s sent an operator request; denied", g.name.c_str());
    SendError(*s.ch, Error::DENIED,
              absl::StrCat("operator requests go to the admin socket",
                           admin_path_.empty() ? "" : " ", admin_path_, "; guest '", g.name,
                           "' may not send them"),
              env.seq());
    return absl::OkStatus();
  }
  if (env.has_stats_request()) {
    Envelope rep;
    rep.set_seq(env.seq());
    auto* sr = rep.mutable_stats_reply();
    const uint16_t nq = g.port ? g.port->num_queue_pairs() : 0;
    for (uint16_t q = 0; q < nq; q++) CopyQueueCounters(q, g.port->counters(q), sr->add_queues());
    return s.ch->Send(rep);
  }
  if (env.has_bye()) return absl::AbortedError(absl::StrCat("guest said bye: ", env.bye().reason()));
  if (env.has_error())
    return absl::AbortedError(absl::StrCat("guest reported error ",
                                           Error::Code_Name(env.error().code()), ": ",
                                           env.error().message()));
  if (env.has_regions()) return vf_.OnRegions(*s.ch, g, f);
  if (env.has_rss_config()) {
    // A bad table is the guest's own problem: it is told, the old one stays.
    if (absl::Status st = ApplyRssConfig(env.rss_config(), g, dp_); !st.ok())
      SendError(*s.ch, absl::IsResourceExhausted(st) ? Error::LIMIT : Error::MALFORMED,
                absl::StrCat("guest '", g.name, "': ", st.message()), env.seq());
    return absl::OkStatus();
  }
  if (env.has_vf_accept()) return vf_.OnVfAccept(*s.ch, g, env);
  if (env.has_revoke_done()) return vf_.OnRevokeDone(*s.ch, g, env);
  if (env.has_migrate_ready()) return mig_.OnMigrateReady(*s.ch, g, env);
  SendError(*s.ch, Error::UNEXPECTED,
            absl::StrCat("message ", BodyName(env), " is not legal for guest '", g.name,
                         "' in state ", g.lc.name()),
            env.seq());
  return absl::FailedPreconditionError("unexpected message in guest session");
}

bool ControlServer::LinkUp() const {
  if (dp_ && dp_->uplink()) return dp_->uplink()->link_up();
  return true;  // no uplink: the guests' switch is always "up"
}

void ControlServer::CloseSession(int fd, const std::string& why) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  if (it->second.role == SessionRole::kGuest) {
    Guest* g = guests_.Get(it->second.guest_id);
    if (g && mig_.KeepsGuest(*g)) {
      // COMMITTED: the shell left for the destination; keep the slot.
      NPA_LOG(Info, "control: guest %s: control session closed after the commit (%s)",
              g->name.c_str(), why.c_str());
      g->session_fd = -1;
      vf_.ForgetAdmin(fd);
      mig_.ForgetAdmin(fd);
      admin_socket_fds_.erase(fd);
      loop_.Unwatch(fd);
      sessions_.erase(it);
      return;
    }
    CloseGuest(it->second.guest_id, why, /*broken=*/false);  // erases the session too
    if (sessions_.count(fd) == 0) return;
    it = sessions_.find(fd);  // its guest was already gone
  }
  vf_.ForgetAdmin(fd);
  mig_.ForgetAdmin(fd);
  admin_.Forget(fd);
  admin_socket_fds_.erase(fd);
  NPA_LOG(Debug, "control: session fd %d closed: %s", fd, why.c_str());
  limits_.Release(fd);
  loop_.Unwatch(fd);
  sessions_.erase(it);
}

void ControlServer::Housekeeping() {
  if (opts_.vfs) opts_.vfs->Poll();
  for (uint64_t id : std::vector<uint64_t>(want_vf_.begin(), want_vf_.end())) {
    Guest* g = guests_.Get(id);
    if (!g) want_vf_.erase(id);
    else if (g->lc.state() == GuestState::kRunning) OfferFreeVf(*g);
  }
  for (uint64_t id : guests_.ids()) {
    if (Guest* g = guests_.Get(id)) UpdateReadiness(*g);
  }
  const bool up = LinkUp();
  if (up != last_link_up_) {
    last_link_up_ = up;
    NPA_LOG(Info, "control: uplink link %s", up ? "up" : "down");
    for (auto& [fd, s] : sessions_) {
      if (s.role != SessionRole::kGuest) continue;
      Envelope link;
      link.mutable_link()->set_up(up);
      // A guest that cannot hear it is closed by its own session's failure.
      s.ch->Send(link).IgnoreError();
    }
  }
}

void ControlServer::Shutdown(const std::string& reason) {
  // The roster stays as the running agent left it: the next agent waits for
  // these guests (docs/security.md "Agent restart").
  gate_.Stop();
  for (uint64_t id : guests_.ids()) CloseGuest(id, reason, /*broken=*/false);
  std::vector<int> fds;
  for (const auto& [fd, s] : sessions_) fds.push_back(fd);
  for (int fd : fds) CloseSession(fd, reason);
  for (auto& [fd, path] : listeners_) {
    loop_.Unwatch(fd.get());
    unlink(path.c_str());
  }
  listeners_.clear();
  admin_listen_fd_ = -1;
  if (mig_.wake_fd() >= 0) loop_.Unwatch(mig_.wake_fd());
}

void ControlServer::SaveRestartRoster() { gate_.Save(guests_, vf_.Orphans()); }

}  // namespace npa::agent
