// hypervisor/daemon/control_server_accept.cc — ControlServer's admission
// path (control_server.h): accepting connections on the control, admin and
// vhost-user sockets, the Hello (new guest, or resume with a ticket) and the
// shell's back end with its Welcome. Split out of control_server.cc to keep
// that file to the event loop and the sessions (each guest's readiness and
// way to CLOSED: control_server_guests.cc); the pure checks and the restart
// gate are guest_admission.h. Same thread rules: the control thread only.
#include "hypervisor/daemon/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {

using control::Envelope;
using control::Error;

void ControlServer::AcceptControl(int lfd) {
  int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != EINTR)
      NPA_LOG(Warn, "control: accept on control socket: %s", strerror(errno));
    return;
  }
  UniqueFd conn(c);
  const bool admin = lfd == admin_listen_fd_;
  if (admin) {
    struct ucred cred {};
    socklen_t len = sizeof(cred);
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
      NPA_LOG(Warn, "control: admin socket: refusing peer pid %d uid %u (operator is uid 0 or %u)",
              cred.pid, cred.uid, geteuid());
      return;
    }
  }
  if (sessions_.size() >= opts_.max_sessions) {
    NPA_LOG(Warn, "control: refusing connection: %zu sessions open (limit)", sessions_.size());
    return;
  }
  Session s;
  s.ch = std::make_unique<ControlChannel>(std::move(conn));
  if (absl::Status st = loop_.Watch(c, FdKind::kSession); !st.ok()) {
    NPA_LOG(Error, "control: %s; dropping the connection", std::string(st.message()).c_str());
    return;  // the connection closes with s
  }
  if (absl::Status st = limits_.Admit(c, s.ch.get()); !st.ok()) {
    loop_.Unwatch(c);
    SendError(*s.ch, Error::LIMIT, std::string(st.message()));
    return;  // the connection closes with s
  }
  sessions_.emplace(c, std::move(s));
  if (admin) admin_socket_fds_.insert(c);
  NPA_LOG(Debug, "control: session fd %d accepted on the %s socket", c, admin ? "admin" : "control");
}

void ControlServer::AcceptVhost(int lfd) {
  int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) {
    if (errno != EAGAIN && errno != EINTR)
      NPA_LOG(Warn, "control: accept on vhost-user socket: %s", strerror(errno));
    return;
  }
  UniqueFd conn(c);
  if (guests_.size() >= opts_.max_guests) {
    NPA_LOG(Warn, "control: refusing vhost-user connection: %zu guests (limit)", guests_.size());
    return;
  }
  const uint64_t id = guests_.NewId();
  std::string name = absl::StrCat("vhost", id);
  LogScope log_scope(name);
  auto port = factory_(std::move(conn), VhostDevice::Options{name, opts_.max_queue_pairs,
                                                              opts_.features, opts_.mtu,
                                                              /*require_sealed_memory=*/false,
                                                              opts_.max_guest_memory});
  if (!port.ok()) {
    NPA_LOG(Error, "control: guest %s: create vhost-user back end: %s", name.c_str(),
            std::string(port.status().message()).c_str());
    return;
  }
  Guest& g = guests_.Add(id);
  g.name = name;
  g.queue_pairs = opts_.max_queue_pairs;
  g.transport = "vhost-user-socket";
  g.port = std::move(*port);
  if (absl::Status st = g.Move(GuestState::kNegotiating); !st.ok()) {
    CloseGuest(id, std::string(st.message()), /*broken=*/true);
    return;
  }
  if (g.port->fd() >= 0) {
    if (absl::Status st = loop_.Watch(g.port->fd(), FdKind::kGuestPort, id); !st.ok()) {
      CloseGuest(id, std::string(st.message()), /*broken=*/true);
      return;
    }
    loop_.SetDeadline(g.port->fd(), MonotonicMs() + opts_.session_limits.negotiate_timeout_ms)
        .IgnoreError();  // watched just above
  }
  NPA_LOG(Info, "control: guest %s (id %lu) attached via vhost-user socket", name.c_str(),
          static_cast<unsigned long>(id));
}

absl::Status ControlServer::HandleHello(Session& s, ControlFrame& f) {
  const control::Hello& h = f.env.hello();
  const uint64_t seq = f.env.seq();
  auto reject = [&](Error::Code code, const std::string& msg) {
    SendError(*s.ch, code, msg, seq);
    return absl::InvalidArgumentError(msg);
  };
  if (HelloVerdict v = CheckHelloFrame(h, f.fds.size()); !v.ok()) return reject(v.code, v.problem);
  LogScope log_scope(h.name());  // a valid name from here on
  if (h.has_resume() && !h.resume().ticket().empty()) return HandleResumeHello(s, f);
  HelloVerdict v = CheckNewGuestHello(h, guests_, opts_.max_queue_pairs);
  if (!v.ok()) return reject(v.code, v.problem);
  if (h.has_resume()) {
    // A shell whose agent went away (no ticket): a new guest whose rings
    // continue at the indices it gives (SET_VRING_BASE on its back end).
    NPA_LOG(Info, "control: guest %s resumes its rings after losing its agent (%d vrings)",
            h.name().c_str(), h.resume().vrings_size());
  }
  const uint64_t id = guests_.NewId();
  Guest& g = guests_.Add(id);
  g.name = h.name();
  g.mac = v.mac;
  g.pid = h.pid();
  g.queue_pairs = static_cast<uint16_t>(h.queue_pairs());
  g.offloads = h.features();
  g.transport = "control";
  g.lost_agent = h.has_resume();  // no ticket here (HandleResumeHello has those)
  if (absl::Status st = g.Move(GuestState::kNegotiating); !st.ok()) {
    guests_.Erase(id);
    return reject(Error::INTERNAL, std::string(st.message()));
  }
  return AttachShell(s, g, seq);
}

absl::Status ControlServer::HandleResumeHello(Session& s, ControlFrame& f) {
  const control::Hello& h = f.env.hello();
  const uint64_t seq = f.env.seq();
  auto claim = mig_.ClaimTicket(h);
  if (!claim.ok()) {
    const Error::Code code = absl::IsNotFound(claim.status())        ? Error::NOT_FOUND
                             : absl::IsInvalidArgument(claim.status()) ? Error::MALFORMED
                                                                       : Error::UNEXPECTED;
    SendError(*s.ch, code, std::string(claim.status().message()), seq);
    return claim.status();
  }
  Guest& g = **claim;
  if (g.port) {  // A: the shell came back before its old connection was noticed closed
    if (g.in_dataplane && dp_) {
      if (absl::Status st = dp_->RemoveGuest(g.id); !st.ok())
        NPA_LOG(Warn, "control: guest %s: remove from dataplane: %s", g.name.c_str(),
                std::string(st.message()).c_str());
      g.in_dataplane = false;
    }
    loop_.Unwatch(g.port->fd());
    g.port.reset();
  }
  g.pid = h.pid();
  g.offloads = h.features();
  return AttachShell(s, g, seq);
}

absl::Status ControlServer::AttachShell(Session& s, Guest& g, uint64_t seq) {
  LogScope log_scope(g.name);
  const uint64_t id = g.id;
  auto fail = [&](const std::string& msg) {
    SendError(*s.ch, Error::INTERNAL, msg, seq);
    return absl::InternalError(msg);
  };
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    const std::string msg = absl::StrCat("socketpair for guest '", g.name, "': ", strerror(errno));
    CloseGuest(id, msg, /*broken=*/true);
    return fail(msg);
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  // Control-protocol guests are npa shells, which seal their memfds
  // (shell/region.h): require it, so a guest cannot SIGBUS the agent by
  // shrinking memory it gave in SET_MEM_TABLE (docs/operator-guide.md).
  auto port = factory_(std::move(ours),
                       VhostDevice::Options{g.name, g.queue_pairs, opts_.features, opts_.mtu,
                                            /*require_sealed_memory=*/true,
                                            opts_.max_guest_memory});
  if (!port.ok()) {
    const std::string msg = absl::StrCat("create vhost-user back end for guest '", g.name,
                                         "': ", port.status().message());
    CloseGuest(id, msg, /*broken=*/true);
    return fail(msg);
  }
  g.session_fd = s.ch->fd();
  g.port = std::move(*port);
  // From here the session is the guest's: an error closes both.
  s.role = SessionRole::kGuest;
  s.guest_id = id;
  if (g.port->fd() >= 0) {
    if (absl::Status st = loop_.Watch(g.port->fd(), FdKind::kGuestPort, id); !st.ok())
      return fail(absl::StrCat("guest '", g.name, "': ", st.message()));
  }

  Envelope w;
  w.set_seq(seq);
  auto* wel = w.mutable_welcome();
  wel->set_guest_id(id);
  wel->set_mac(std::string(reinterpret_cast<const char*>(g.mac->data()), 6));
  wel->set_mtu(opts_.mtu);
  wel->set_max_queue_pairs(g.queue_pairs);
  wel->set_link_up(LinkUp());
  wel->set_agent_name(opts_.agent_name);
  wel->set_rss_spread(true);  // RssConfig is understood (guest_rss.h)
  int fd = theirs.get();
  NPA_RETURN_IF_ERROR(s.ch->Send(w, std::span<const int>(&fd, 1)));
  Envelope link;
  link.mutable_link()->set_up(LinkUp());
  NPA_RETURN_IF_ERROR(s.ch->Send(link));
  NPA_LOG(Info, "control: guest %s (id %lu, mac %s, %u queue pairs, pid %u) attached%s",
          g.name.c_str(), static_cast<unsigned long>(id), MacToString(*g.mac).c_str(),
          g.queue_pairs, g.pid, g.lc.state() == GuestState::kResuming ? " (resuming)" : "");
  return absl::OkStatus();
}

}  // namespace npa::agent
