#include "hypervisor/daemon/control_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

// Codec failures map onto the protocol's error codes by what they are about.
Error::Code CodeForCodecError(const absl::Status& s) {
  if (absl::IsFailedPrecondition(s)) return Error::VERSION;
  if (s.message().find("fds") != absl::string_view::npos) return Error::FD_MISMATCH;
  return Error::MALFORMED;
}

void CopyCounters(uint32_t qp, const QueueCounters& c, control::QueueCounters* out) {
  out->set_queue(qp);
  out->set_rx_packets(c.rx_packets);
  out->set_rx_bytes(c.rx_bytes);
  out->set_rx_dropped(c.rx_dropped);
  out->set_tx_packets(c.tx_packets);
  out->set_tx_bytes(c.tx_bytes);
  out->set_tx_dropped(c.tx_dropped);
}

}  // namespace

std::string CheckGuestName(const std::string& name) {
  if (name.empty() || name.size() > 63)
    return absl::StrCat("guest name is ", name.size(), " characters; want 1..63");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok)
      return absl::StrCat("guest name contains byte 0x", absl::Hex(static_cast<uint8_t>(c)),
                          "; allowed: A-Z a-z 0-9 _ . -");
  }
  return "";
}

ControlServer::ControlServer(Options opts, Dataplane* dataplane, PortFactory factory)
    : opts_(std::move(opts)), dp_(dataplane), factory_(std::move(factory)) {
  start_ms_ = NowMs();
  // Stable per agent name, so a guest that re-attaches to the same agent
  // tends to get the same MAC back.
  for (char c : opts_.agent_name) mac_salt_ = mac_salt_ * 131 + static_cast<uint8_t>(c);
}

ControlServer::~ControlServer() { Shutdown(); }

uint64_t ControlServer::NowMs() const {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000ull + t.tv_nsec / 1000000;
}

void ControlServer::Watch(int fd, FdKind kind, uint64_t id) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
    NPA_LOG(Error, "control: epoll_ctl add fd %d: %s", fd, strerror(errno));
  fds_[fd] = FdEntry{kind, id};
}

void ControlServer::Unwatch(int fd) {
  if (fd < 0) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(fd);
}

absl::Status ControlServer::Listen() {
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoError(errno, "epoll_create1 for the control server");
  if (!opts_.control_path.empty()) {
    auto l = ListenUnix(opts_.control_path);
    if (!l.ok())
      return absl::Status(l.status().code(), absl::StrCat("listen on control socket ",
                                                          opts_.control_path, ": ",
                                                          l.status().message()));
    Watch(l->get(), FdKind::kControlListener, 0);
    listeners_.emplace_back(std::move(*l), opts_.control_path);
    NPA_LOG(Info, "control: listening on %s", opts_.control_path.c_str());
  }
  for (std::string path : opts_.vhost_user_paths) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/vhost-user.sock";
    auto l = ListenUnix(path);
    if (!l.ok())
      return absl::Status(l.status().code(), absl::StrCat("listen on vhost-user socket ", path,
                                                          ": ", l.status().message()));
    Watch(l->get(), FdKind::kVhostListener, 0);
    listeners_.emplace_back(std::move(*l), path);
    NPA_LOG(Info, "control: vhost-user listener on %s", path.c_str());
  }
  last_link_up_ = LinkUp();
  return absl::OkStatus();
}

absl::Status ControlServer::Run(const std::atomic<bool>* stop) {
  while (!stop->load()) NPA_RETURN_IF_ERROR(RunOnce(opts_.housekeeping_ms));
  return absl::OkStatus();
}

absl::Status ControlServer::RunOnce(int timeout_ms) {
  epoll_event evs[32];
  int n = epoll_wait(epoll_fd_.get(), evs, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return absl::OkStatus();
    return ErrnoError(errno, "epoll_wait in the control server");
  }
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;  // closed by an earlier event of this batch
    FdEntry e = it->second;
    switch (e.kind) {
      case FdKind::kControlListener: AcceptControl(fd); break;
      case FdKind::kVhostListener: AcceptVhost(fd); break;
      case FdKind::kSession: OnSessionReadable(fd); break;
      case FdKind::kGuestPort: OnGuestPortReadable(e.id); break;
    }
  }
  CheckVfDeadlines();
  if (NowMs() - last_housekeeping_ms_ >= static_cast<uint64_t>(opts_.housekeeping_ms)) {
    last_housekeeping_ms_ = NowMs();
    Housekeeping();
  }
  return absl::OkStatus();
}

void ControlServer::AcceptControl(int lfd) {
  int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != EINTR)
      NPA_LOG(Warn, "control: accept on control socket: %s", strerror(errno));
    return;
  }
  UniqueFd conn(c);
  if (sessions_.size() >= opts_.max_sessions) {
    NPA_LOG(Warn, "control: refusing connection: %zu sessions open (limit)", sessions_.size());
    return;
  }
  Session s;
  s.ch = std::make_unique<ControlChannel>(std::move(conn));
  Watch(c, FdKind::kSession, 0);
  sessions_.emplace(c, std::move(s));
  NPA_LOG(Debug, "control: session fd %d accepted", c);
}

void ControlServer::AcceptVhost(int lfd) {
  int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != EINTR)
      NPA_LOG(Warn, "control: accept on vhost-user socket: %s", strerror(errno));
    return;
  }
  UniqueFd conn(c);
  if (guests_.size() >= opts_.max_sessions) {
    NPA_LOG(Warn, "control: refusing vhost-user connection: %zu guests (limit)", guests_.size());
    return;
  }
  uint64_t id = next_guest_id_++;
  std::string name = absl::StrCat("vhost", id);
  auto port = factory_(std::move(conn), VhostDevice::Options{name, opts_.max_queue_pairs,
                                                              opts_.features, opts_.mtu});
  if (!port.ok()) {
    NPA_LOG(Error, "control: guest %s: create vhost-user back end: %s", name.c_str(),
            std::string(port.status().message()).c_str());
    return;
  }
  Guest& g = guests_[id];
  g.id = id;
  g.name = name;
  g.queue_pairs = opts_.max_queue_pairs;
  g.transport = "vhost-user-socket";
  g.port = std::move(*port);
  (void)g.lc.Transition(GuestState::kNegotiating);
  if (g.port->fd() >= 0) Watch(g.port->fd(), FdKind::kGuestPort, id);
  NPA_LOG(Info, "control: guest %s (id %lu) attached via vhost-user socket", name.c_str(),
          static_cast<unsigned long>(id));
}

void ControlServer::SendError(Session& s, Error::Code code, const std::string& msg, uint64_t seq) {
  NPA_LOG(Warn, "control: session fd %d: rejected (%s): %s", s.ch->fd(),
          Error::Code_Name(code).c_str(), msg.c_str());
  Envelope env;
  env.set_seq(seq);
  env.mutable_error()->set_code(code);
  env.mutable_error()->set_message(msg);
  (void)s.ch->Send(env);  // best effort: the session closes next anyway
}

void ControlServer::OnSessionReadable(int fd) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  absl::Status st = s.ch->OnReadable();
  if (!st.ok()) {
    if (absl::IsAborted(st)) {
      CloseSession(fd, "peer closed the control connection");
      return;
    }
    SendError(s, CodeForCodecError(st), std::string(st.message()));
    CloseSession(fd, std::string(st.message()));
    return;
  }
  for (;;) {
    auto f = s.ch->Pop();
    if (!f.ok()) {
      SendError(s, CodeForCodecError(f.status()), std::string(f.status().message()));
      CloseSession(fd, std::string(f.status().message()));
      return;
    }
    if (!f->has_value()) return;
    st = HandleFrame(s, **f);
    if (!st.ok()) {
      CloseSession(fd, std::string(st.message()));
      return;
    }
  }
}

absl::Status ControlServer::HandleFrame(Session& s, ControlFrame& f) {
  const Envelope& env = f.env;
  switch (s.role) {
    case Role::kUndecided:
      if (env.has_hello()) return HandleHello(s, f);
      if (env.has_admin_request()) {
        s.role = Role::kAdmin;
        return HandleAdmin(s, f);
      }
      SendError(s, Error::UNEXPECTED,
                absl::StrCat("first message must be hello or admin_request, got ", BodyName(env)),
                env.seq());
      return absl::FailedPreconditionError(absl::StrCat("unexpected first message ", BodyName(env)));
    case Role::kAdmin:
      if (env.has_admin_request()) return HandleAdmin(s, f);
      SendError(s, Error::UNEXPECTED,
                absl::StrCat("an admin session takes only admin_request, got ", BodyName(env)),
                env.seq());
      return absl::FailedPreconditionError("unexpected message in admin session");
    case Role::kGuest: {
      auto git = guests_.find(s.guest_id);
      if (git == guests_.end()) return absl::InternalError("guest session without a guest");
      Guest& g = git->second;
      if (env.has_stats_request()) {
        Envelope rep;
        rep.set_seq(env.seq());
        auto* sr = rep.mutable_stats_reply();
        uint16_t nq = g.port ? g.port->num_queue_pairs() : 0;
        for (uint16_t q = 0; q < nq; q++) CopyCounters(q, g.port->counters(q), sr->add_queues());
        return s.ch->Send(rep);
      }
      if (env.has_bye())
        return absl::AbortedError(absl::StrCat("guest said bye: ", env.bye().reason()));
      if (env.has_error())
        return absl::AbortedError(absl::StrCat("guest reported error ",
                                               Error::Code_Name(env.error().code()), ": ",
                                               env.error().message()));
      if (env.has_regions()) return HandleRegions(s, g, f);
      if (env.has_vf_accept()) return HandleVfAccept(s, g, env);
      if (env.has_revoke_done()) return HandleRevokeDone(s, g, env);
      SendError(s, Error::UNEXPECTED,
                absl::StrCat("message ", BodyName(env), " is not legal for guest '", g.name,
                             "' in state ", g.lc.name()),
                env.seq());
      return absl::FailedPreconditionError("unexpected message in guest session");
    }
  }
  return absl::InternalError("unknown session role");
}

bool ControlServer::MacInUse(const MacAddr& m) const {
  for (const auto& [id, g] : guests_)
    if (g.mac && *g.mac == m) return true;
  return false;
}

std::optional<MacAddr> ControlServer::AssignMac() {
  for (uint32_t i = 0; i < 1024; i++) {
    uint32_t n = static_cast<uint32_t>(next_guest_id_) + i;
    // 02: locally administered, unicast (IEEE 802 §8.4).
    MacAddr m = {0x02, static_cast<uint8_t>(mac_salt_ >> 8), static_cast<uint8_t>(mac_salt_),
                 static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                 static_cast<uint8_t>(n)};
    if (!MacInUse(m)) return m;
  }
  return std::nullopt;
}

absl::Status ControlServer::HandleHello(Session& s, ControlFrame& f) {
  const control::Hello& h = f.env.hello();
  uint64_t seq = f.env.seq();
  auto reject = [&](Error::Code code, const std::string& msg) {
    SendError(s, code, msg, seq);
    return absl::InvalidArgumentError(msg);
  };
  if (!f.fds.empty())
    return reject(Error::MALFORMED, absl::StrCat("hello carries ", f.fds.size(), " fds; it takes none"));
  if (std::string p = CheckGuestName(h.name()); !p.empty()) return reject(Error::MALFORMED, p);
  for (const auto& [id, g] : guests_)
    if (g.name == h.name())
      return reject(Error::BUSY, absl::StrCat("guest name '", h.name(), "' is in use (guest id ", id, ")"));
  std::optional<MacAddr> mac;
  if (h.mac().size() == 6) {
    MacAddr m;
    memcpy(m.data(), h.mac().data(), 6);
    if (IsMulticast(m) || IsZeroMac(m))
      return reject(Error::MALFORMED, absl::StrCat("hello.mac ", MacToString(m), " is not a unicast address"));
    if (MacInUse(m))
      return reject(Error::BUSY, absl::StrCat("MAC ", MacToString(m), " is in use by another guest"));
    mac = m;
  } else if (!h.mac().empty()) {
    return reject(Error::MALFORMED, absl::StrCat("hello.mac is ", h.mac().size(), " bytes; want 0 or 6"));
  } else {
    mac = AssignMac();
    if (!mac) return reject(Error::BUSY, "no free MAC address to assign");
  }
  if (h.queue_pairs() < 1 || h.queue_pairs() > opts_.max_queue_pairs)
    return reject(Error::MALFORMED, absl::StrCat("hello.queue_pairs ", h.queue_pairs(),
                                                 " outside 1..", opts_.max_queue_pairs));
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    int e = errno;
    return reject(Error::INTERNAL, absl::StrCat("socketpair for guest '", h.name(), "': ", strerror(e)));
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  // Control-protocol guests are npa shells, which seal their memfds
  // (shell/region.h): require it, so a guest cannot SIGBUS the agent by
  // shrinking memory it gave in SET_MEM_TABLE (docs/operator-guide.md).
  auto port = factory_(std::move(ours),
                       VhostDevice::Options{h.name(), static_cast<uint16_t>(h.queue_pairs()),
                                            opts_.features, opts_.mtu,
                                            /*require_sealed_memory=*/true});
  if (!port.ok())
    return reject(Error::INTERNAL, absl::StrCat("create vhost-user back end for guest '", h.name(),
                                                "': ", port.status().message()));
  uint64_t id = next_guest_id_++;
  Guest& g = guests_[id];
  g.id = id;
  g.name = h.name();
  g.mac = mac;
  g.pid = h.pid();
  g.queue_pairs = static_cast<uint16_t>(h.queue_pairs());
  g.transport = "control";
  g.session_fd = s.ch->fd();
  g.port = std::move(*port);
  s.role = Role::kGuest;
  s.guest_id = id;
  (void)g.lc.Transition(GuestState::kNegotiating);
  if (g.port->fd() >= 0) Watch(g.port->fd(), FdKind::kGuestPort, id);

  Envelope w;
  w.set_seq(seq);
  auto* wel = w.mutable_welcome();
  wel->set_guest_id(id);
  wel->set_mac(std::string(reinterpret_cast<const char*>(mac->data()), 6));
  wel->set_mtu(opts_.mtu);
  wel->set_max_queue_pairs(g.queue_pairs);
  wel->set_link_up(LinkUp());
  wel->set_agent_name(opts_.agent_name);
  int fd = theirs.get();
  NPA_RETURN_IF_ERROR(s.ch->Send(w, std::span<const int>(&fd, 1)));
  Envelope link;
  link.mutable_link()->set_up(LinkUp());
  NPA_RETURN_IF_ERROR(s.ch->Send(link));
  NPA_LOG(Info, "control: guest %s (id %lu, mac %s, %u queue pairs, pid %u) attached",
          g.name.c_str(), static_cast<unsigned long>(id), MacToString(*mac).c_str(), g.queue_pairs,
          g.pid);
  return absl::OkStatus();
}

bool ControlServer::LinkUp() const {
  if (dp_ && dp_->uplink()) return dp_->uplink()->link_up();
  return true;  // no uplink: the guests' switch is always "up"
}

void ControlServer::FillGuestInfo(const Guest& g, bool with_queues, control::GuestInfo* out) const {
  out->set_id(g.id);
  out->set_name(g.name);
  out->set_mac(g.mac ? MacToString(*g.mac) : "");
  out->set_state(g.lc.name());
  out->set_path(g.lc.state() == GuestState::kVfActive ? "vf" : g.in_dataplane ? "emulated" : "none");
  uint16_t nq = g.port ? g.port->num_queue_pairs() : 0;
  // Report the queue pairs the guest actually enabled; the negotiated
  // maximum (or a Hello sent before configure) overstates it.
  uint16_t ready = 0;
  for (uint16_t q = 0; q < nq; q++) ready += g.port->QueueReady(q) ? 1 : 0;
  out->set_queue_pairs(ready ? ready : (g.transport == "control" ? g.queue_pairs : nq));
  out->set_vhost_ready(g.port && g.port->QueueReady(0));
  out->set_pid(g.pid);
  out->set_transport(g.transport);
  if (with_queues)
    for (uint16_t q = 0; q < nq; q++) CopyCounters(q, g.port->counters(q), out->add_queues());
}

absl::Status ControlServer::HandleAdmin(Session& s, const ControlFrame& f) {
  const control::AdminRequest& r = f.env.admin_request();
  Envelope rep;
  rep.set_seq(f.env.seq());
  auto* a = rep.mutable_admin_reply();
  a->set_agent_name(opts_.agent_name);
  a->set_uptime_ms(NowMs() - start_ms_);
  if (!f.fds.empty()) {
    a->mutable_error()->set_code(Error::MALFORMED);
    a->mutable_error()->set_message(absl::StrCat("admin_request carries ", f.fds.size(), " fds; it takes none"));
    (void)s.ch->Send(rep);
    return absl::InvalidArgumentError("admin request with fds");
  }
  switch (r.op_case()) {
    case control::AdminRequest::kListGuests:
      for (const auto& [id, g] : guests_) FillGuestInfo(g, false, a->add_guests());
      break;
    case control::AdminRequest::kGuestStats: {
      const std::string& want = r.guest_stats().guest();
      uint64_t want_id = 0;
      bool numeric = absl::SimpleAtoi(want, &want_id);
      bool found = false;
      for (const auto& [id, g] : guests_) {
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
      for (const auto& [id, g] : guests_) FillGuestInfo(g, false, a->add_guests());
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
      return AdminVf(s, f.env);
    case control::AdminRequest::OP_NOT_SET:
      a->mutable_error()->set_code(Error::MALFORMED);
      a->mutable_error()->set_message("admin_request names no operation (unknown op?)");
      (void)s.ch->Send(rep);
      return absl::InvalidArgumentError("admin request without op");
  }
  return s.ch->Send(rep);
}

void ControlServer::OnGuestPortReadable(uint64_t guest_id) {
  auto it = guests_.find(guest_id);
  if (it == guests_.end()) return;
  absl::Status st = it->second.port->OnReadable();
  if (!st.ok()) {
    bool closed = absl::IsAborted(st);
    CloseGuest(guest_id,
               closed ? "vhost-user front end closed the connection"
                      : absl::StrCat("vhost-user: ", st.message()),
               /*broken=*/!closed);
    return;
  }
  UpdateReadiness(it->second);
}

void ControlServer::UpdateReadiness(Guest& g) {
  if (g.port->broken()) {
    CloseGuest(g.id, absl::StrCat("back end broken: ", g.port->broken_reason()), /*broken=*/true);
    return;  // g is gone
  }
  bool any_ready = false;
  uint16_t nq = g.port->num_queue_pairs();
  for (uint16_t q = 0; q < nq && !any_ready; q++) any_ready = g.port->QueueReady(q);
  GuestState st = g.lc.state();
  if (st == GuestState::kNegotiating && g.port->QueueReady(0)) {
    (void)g.lc.Transition(GuestState::kReady);
    NPA_LOG(Info, "control: guest %s: READY (%u queue pairs)", g.name.c_str(), nq);
    st = GuestState::kReady;
  }
  if (st == GuestState::kReady && dp_) {
    absl::Status s = dp_->AddGuest(g.id, g.port, g.transport == "control" ? g.mac : std::nullopt);
    if (!s.ok()) {
      NPA_LOG(Error, "control: guest %s: add to dataplane: %s", g.name.c_str(),
              std::string(s.message()).c_str());
      CloseGuest(g.id, absl::StrCat("add to dataplane: ", s.message()), /*broken=*/true);
      return;
    }
    g.in_dataplane = true;
    (void)g.lc.Transition(GuestState::kRunning);
    NPA_LOG(Info, "control: guest %s: RUNNING", g.name.c_str());
  } else if (st == GuestState::kRunning && !any_ready) {
    // The front end stopped every ring (GET_VRING_BASE, reset): stop polling
    // until it starts them again.
    if (dp_) (void)dp_->RemoveGuest(g.id);
    g.in_dataplane = false;
    (void)g.lc.Transition(GuestState::kNegotiating);
    NPA_LOG(Info, "control: guest %s: queues stopped, NEGOTIATING", g.name.c_str());
  }
}

void ControlServer::CloseSession(int fd, const std::string& why) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  if (it->second.role == Role::kGuest) {
    CloseGuest(it->second.guest_id, why, /*broken=*/false);  // erases the session too
    return;
  }
  for (PendingVf& p : pending_vf_)
    if (p.admin_fd == fd) p.admin_fd = -1;  // nobody left to answer
  NPA_LOG(Debug, "control: session fd %d closed: %s", fd, why.c_str());
  Unwatch(fd);
  sessions_.erase(it);
}

void ControlServer::CloseGuest(uint64_t guest_id, const std::string& why, bool broken) {
  auto it = guests_.find(guest_id);
  if (it == guests_.end()) return;
  Guest& g = it->second;
  FailPendingOfGuest(guest_id, absl::StrCat("guest '", g.name, "' closed: ", why));
  // The guest may still hold the device fd (a session closed by a live
  // process): reset and unbind without waiting for it.
  if (g.offer_id) (void)ReleaseGuestVf(g, absl::StrCat("guest closed: ", why), /*force=*/true);
  if (broken) (void)g.lc.Transition(GuestState::kBroken);
  (void)g.lc.Transition(GuestState::kClosing);
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
  if (g.port && g.port->fd() >= 0) Unwatch(g.port->fd());
  auto sit = sessions_.find(g.session_fd);
  if (g.session_fd >= 0 && sit != sessions_.end()) {
    Envelope bye;
    bye.mutable_bye()->set_reason(why);
    (void)sit->second.ch->Send(bye);
    Unwatch(g.session_fd);
    sessions_.erase(sit);
  }
  (void)g.lc.Transition(GuestState::kClosed);
  if (broken)
    NPA_LOG(Warn, "control: guest %s (id %lu) closed: %s", g.name.c_str(),
            static_cast<unsigned long>(g.id), why.c_str());
  else
    NPA_LOG(Info, "control: guest %s (id %lu) closed: %s", g.name.c_str(),
            static_cast<unsigned long>(g.id), why.c_str());
  guests_.erase(it);
}

void ControlServer::Housekeeping() {
  if (opts_.vfs) opts_.vfs->Poll();
  std::vector<uint64_t> ids;
  for (const auto& [id, g] : guests_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = guests_.find(id);
    if (it != guests_.end()) UpdateReadiness(it->second);
  }
  bool up = LinkUp();
  if (up != last_link_up_) {
    last_link_up_ = up;
    NPA_LOG(Info, "control: uplink link %s", up ? "up" : "down");
    for (auto& [fd, s] : sessions_) {
      if (s.role != Role::kGuest) continue;
      Envelope link;
      link.mutable_link()->set_up(up);
      (void)s.ch->Send(link);
    }
  }
}

void ControlServer::Shutdown(const std::string& reason) {
  std::vector<uint64_t> ids;
  for (const auto& [id, g] : guests_) ids.push_back(id);
  for (uint64_t id : ids) CloseGuest(id, reason, /*broken=*/false);
  std::vector<int> fds;
  for (const auto& [fd, s] : sessions_) fds.push_back(fd);
  for (int fd : fds) CloseSession(fd, reason);
  for (auto& [fd, path] : listeners_) {
    Unwatch(fd.get());
    unlink(path.c_str());
  }
  listeners_.clear();
}

}  // namespace npa::agent
