#include "shell/control_client.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"

namespace npa::shell {

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Connect(const std::string& path,
                                                                      const Hello& hello,
                                                                      int timeout_ms) {
  NPA_ASSIGN_OR_RETURN(UniqueFd s, ConnectUnix(path, timeout_ms));
  return Handshake(std::move(s), hello, timeout_ms);
}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Handshake(UniqueFd sock,
                                                                        const Hello& hello,
                                                                        int timeout_ms) {
  std::unique_ptr<ControlClient> c(new ControlClient(std::move(sock)));
  NPA_RETURN_IF_ERROR(DoHandshake(c->ch_, hello, timeout_ms, &c->welcome_, &c->vhost_fd_));
  c->link_up_.store(c->welcome_.link_up);
  return c;
}

absl::Status ControlClient::DoHandshake(ControlChannel& ch, const Hello& hello, int timeout_ms,
                                        Welcome* out, UniqueFd* vhost) {
  control::Envelope env;
  control::Hello* h = env.mutable_hello();
  h->set_name(hello.name);
  bool any = false;
  for (uint8_t b : hello.mac) any |= b != 0;
  if (any) h->set_mac(std::string(reinterpret_cast<const char*>(hello.mac.data()), 6));
  h->set_queue_pairs(hello.queue_pairs);
  h->set_features(hello.features);
  h->set_pid(static_cast<uint32_t>(::getpid()));
  if (hello.resume) *h->mutable_resume() = *hello.resume;
  NPA_RETURN_IF_ERROR(ch.Send(env));
  auto f = ch.ReceiveBlocking(timeout_ms);
  if (!f.ok()) {
    if (absl::IsDeadlineExceeded(f.status())) return f.status();
    return absl::DataLossError(absl::StrCat("control: waiting for Welcome: ", f.status().message()));
  }
  const control::Envelope& r = f->env;
  if (r.has_error())
    return absl::FailedPreconditionError(absl::StrCat(
        "control: agent refused the session: ", r.error().message(), " (code ", r.error().code(), ")"));
  if (!r.has_welcome())
    return absl::DataLossError(absl::StrCat("control: expected welcome, got ", BodyName(r)));
  if (f->fds.size() != 1)
    return absl::DataLossError(
        absl::StrCat("control: welcome carries ", f->fds.size(), " fds, expected 1 (vhost-user)"));
  const control::Welcome& w = r.welcome();
  if (w.mac().size() != 6)
    return absl::DataLossError(absl::StrCat("control: welcome MAC has ", w.mac().size(), " bytes"));
  if (w.mtu() != 0 && (w.mtu() < 68 || w.mtu() > 65535))
    return absl::DataLossError(absl::StrCat("control: welcome MTU ", w.mtu(), " out of range"));
  out->guest_id = w.guest_id();
  memcpy(out->mac.data(), w.mac().data(), 6);
  out->mtu = w.mtu() ? w.mtu() : 1500;
  out->max_queue_pairs = w.max_queue_pairs();
  out->link_up = w.link_up();
  out->agent_name = w.agent_name().substr(0, 64);
  out->rss_spread = w.rss_spread();
  *vhost = std::move(f->fds[0]);
  return absl::OkStatus();
}

void ControlClient::Disconnect() {
  if (ch_.fd() >= 0 && ep_) (void)epoll_ctl(ep_.get(), EPOLL_CTL_DEL, ch_.fd(), nullptr);
  std::lock_guard<std::mutex> l(send_mu_);
  ch_ = ControlChannel(UniqueFd());
  session_gen_++;
  link_up_.store(false, std::memory_order_relaxed);
}

absl::Status ControlClient::Reconnect(const std::string& path, const Hello& hello, int timeout_ms,
                                      const std::array<uint8_t, 6>& expect_mac) {
  Disconnect();
  // One connect attempt (timeout 0): the caller paces its retries
  // (shell/reconnect.cc, every 50-100 ms); timeout_ms bounds the handshake.
  NPA_ASSIGN_OR_RETURN(UniqueFd s, ConnectUnix(path, 0));
  ControlChannel ch(std::move(s));
  Welcome w;
  UniqueFd vhost;
  NPA_RETURN_IF_ERROR(DoHandshake(ch, hello, timeout_ms, &w, &vhost));
  bool any = false;
  for (uint8_t b : expect_mac) any |= b != 0;
  if (any && w.mac != expect_mac)
    return absl::FailedPreconditionError(absl::StrFormat(
        "control: agent '%s' at %s assigned MAC %02x:%02x:%02x:%02x:%02x:%02x, the guest runs with "
        "%02x:%02x:%02x:%02x:%02x:%02x",
        w.agent_name, path, w.mac[0], w.mac[1], w.mac[2], w.mac[3], w.mac[4], w.mac[5],
        expect_mac[0], expect_mac[1], expect_mac[2], expect_mac[3], expect_mac[4], expect_mac[5]));
  if (ep_) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = ch.fd();
    if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, ch.fd(), &e) < 0)
      return ErrnoError(errno, "epoll_ctl(control socket) after reconnecting");
  }
  {
    std::lock_guard<std::mutex> l(send_mu_);
    ch_ = std::move(ch);
    session_gen_++;
  }
  awaiting_ = false;
  welcome_ = w;
  vhost_fd_ = std::move(vhost);
  link_up_.store(w.link_up, std::memory_order_relaxed);
  return absl::OkStatus();
}

bool ControlClient::WaitForStop(int ms) {
  if (!stop_fd_) return false;
  pollfd p{stop_fd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, ms);
  return r == 1;  // not drained: Run's epoll sees it too
}

bool ControlClient::Lost(int err, const std::string& why) {
  if (!session_hooks_.lost) {
    Fail(err, why);
    return false;
  }
  NPA_LOG(Warn, "shell: control session ended: %s", why.c_str());
  return session_hooks_.lost(why);
}

ControlClient::~ControlClient() { Stop(); }

absl::Status ControlClient::Start(EventQueue* events, StatsFn stats) {
  events_ = events;
  stats_ = std::move(stats);
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoError(errno, "eventfd for the control thread");
  ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep_) return ErrnoError(errno, "epoll_create1 for the control thread");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.fd = ch_.fd();
  if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, ch_.fd(), &e) < 0)
    return ErrnoError(errno, "epoll_ctl(control socket)");
  e.data.fd = stop_fd_.get();
  if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &e) < 0)
    return ErrnoError(errno, "epoll_ctl(stop eventfd)");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ControlClient::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  ssize_t r = ::write(stop_fd_.get(), &one, sizeof one);
  (void)r;
  thread_.join();
}

absl::Status ControlClient::Watch(int fd, std::function<void()> cb) {
  if (fd < 0 || fd == ch_.fd() || fd == stop_fd_.get() || watches_.count(fd))
    return absl::InvalidArgumentError(absl::StrCat("control: cannot watch fd ", fd));
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.fd = fd;
  if (epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &e) < 0) return ErrnoError(errno, "epoll_ctl(watch)");
  watches_[fd] = std::move(cb);
  return absl::OkStatus();
}

void ControlClient::Unwatch(int fd) {
  if (watches_.erase(fd)) (void)epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

absl::Status ControlClient::Send(control::Envelope env, std::span<const int> fds) {
  std::lock_guard<std::mutex> l(send_mu_);
  return ch_.Send(std::move(env), fds);
}

void ControlClient::Fail(int err, const std::string& why) {
  NPA_LOG(Warn, "shell: control session ended: %s", why.c_str());
  if (events_) events_->Push(NPA_EVENT_ERROR, static_cast<uint32_t>(err), why);  // err is -errno
}

void ControlClient::Run() {
  for (;;) {
    epoll_event ev[8];
    int n = epoll_wait(ep_.get(), ev, 8, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail(-errno, "epoll_wait on the control socket failed");
      return;
    }
    // A session replaced by a hook (Reconnect) may reuse an fd number of
    // this round: the rest of the round is stale, epoll again (level-
    // triggered, nothing is missed).
    const uint64_t gen = session_gen_;
    for (int i = 0; i < n && gen == session_gen_; i++) {
      if (ev[i].data.fd == stop_fd_.get()) return;
      if (ev[i].data.fd != ch_.fd()) {
        // A watched fd; an earlier callback of this round may have removed it.
        auto it = watches_.find(ev[i].data.fd);
        if (it != watches_.end()) {
          auto cb = it->second;  // the callback may Unwatch itself
          cb();
        }
        continue;
      }
      absl::Status s = ch_.OnReadable();
      if (!s.ok()) {
        // EOF or a socket error: the agent went away (restart, crash). A
        // malformed stream is the agent's doing: not retried.
        const bool gone = !(absl::IsInvalidArgument(s) || absl::IsResourceExhausted(s) ||
                            absl::IsDataLoss(s));
        if (!gone) {
          Fail(-EPROTO, absl::StrCat("control: ", s.message()));
          return;
        }
        if (!Lost(-ECONNRESET, absl::StrCat("control: ", s.message()))) return;
        continue;  // a new session (session_gen_ moved): epoll again
      }
      for (;;) {
        auto f = ch_.Pop();
        if (!f.ok()) {
          Fail(-EPROTO, absl::StrCat("control: ", f.status().message()));
          return;
        }
        if (!f->has_value()) break;
        if (!Handle(**f)) return;
        if (gen != session_gen_) break;  // a hook replaced the session
      }
      if (ch_.fd() < 0 && !awaiting_) {
        // A hook left the session disconnected without ending it (cannot
        // happen: hooks that disconnect reconnect, await a reconnect from a
        // watch or return false).
        Fail(-ENOTCONN, "control: no session after a session hook");
        return;
      }
    }
  }
}

bool ControlClient::Handle(ControlFrame& f) {
  const control::Envelope& env = f.env;
  // Only VfOffer may carry an fd here; any other fd is a protocol error. Fds
  // are UniqueFd, so whatever we do not keep is closed on return.
  if (!f.fds.empty() && !env.has_vf_offer()) {
    Fail(-EPROTO, absl::StrCat("control: ", BodyName(env), " carries ", f.fds.size(), " fds"));
    return false;
  }
  switch (env.body_case()) {
    case control::Envelope::kLink:
      link_up_.store(env.link().up(), std::memory_order_relaxed);
      events_->Push(NPA_EVENT_LINK_CHANGED, env.link().up() ? 1 : 0,
                    env.link().up() ? "link up" : "link down");
      return true;
    case control::Envelope::kStatsRequest: {
      control::Envelope r;
      r.set_seq(env.seq());
      auto* sr = r.mutable_stats_reply();
      if (stats_)
        for (auto& q : stats_()) *sr->add_queues() = q;
      absl::Status s = Send(std::move(r));
      if (!s.ok()) {
        Fail(-EIO, absl::StrCat("control: sending stats_reply: ", s.message()));
        return false;
      }
      return true;
    }
    case control::Envelope::kVfOffer: {
      control::Envelope r;
      r.set_seq(env.seq());
      auto* a = r.mutable_vf_accept();
      if (f.fds.size() != 1) {
        a->set_offer_id(env.vf_offer().offer_id());
        a->set_accepted(false);
        a->set_reason(absl::StrCat("vf_offer carries ", f.fds.size(),
                                   " fds, expected 1 (the VFIO device fd)"));
        f.fds.clear();
      } else if (!hooks_.offer) {
        a->set_offer_id(env.vf_offer().offer_id());
        a->set_accepted(false);
        a->set_reason("this shell has no VF path (opened without a control socket?)");
        f.fds.clear();  // close the VFIO device fd: we do not use it
      } else {
        *a = hooks_.offer(env.vf_offer(), std::move(f.fds[0]));
        a->set_offer_id(env.vf_offer().offer_id());
        f.fds.clear();
      }
      absl::Status s = Send(std::move(r));
      if (!s.ok()) {
        Fail(-EIO, absl::StrCat("control: sending vf_accept: ", s.message()));
        return false;
      }
      return true;
    }
    case control::Envelope::kRevoke: {
      // Without hooks every queue already runs on the emulated path.
      control::Envelope r;
      r.set_seq(env.seq());
      if (hooks_.revoke) *r.mutable_revoke_done() = hooks_.revoke(env.revoke());
      r.mutable_revoke_done()->set_offer_id(env.revoke().offer_id());
      absl::Status s = Send(std::move(r));
      if (!s.ok()) {
        Fail(-EIO, absl::StrCat("control: sending revoke_done: ", s.message()));
        return false;
      }
      return true;
    }
    case control::Envelope::kError:
      Fail(-ECONNABORTED, absl::StrCat("agent error: ", env.error().message()));
      return false;
    case control::Envelope::kBye:
      // A planned agent stop (upgrade): reconnect like after EOF.
      return Lost(-ECONNRESET, absl::StrCat("agent said bye: ", env.bye().reason()));
    case control::Envelope::kMigratePrepare: {
      control::Envelope r;
      r.set_seq(env.seq());
      if (session_hooks_.prepare) {
        *r.mutable_migrate_ready() = session_hooks_.prepare(env.migrate_prepare());
      } else {
        r.mutable_migrate_ready()->mutable_error()->set_code(control::Error::UNEXPECTED);
        r.mutable_migrate_ready()->mutable_error()->set_message("this shell cannot migrate");
      }
      r.mutable_migrate_ready()->set_migration_id(env.migrate_prepare().migration_id());
      absl::Status s = Send(std::move(r));
      if (!s.ok()) return Lost(-EIO, absl::StrCat("control: sending migrate_ready: ", s.message()));
      return true;
    }
    case control::Envelope::kMigrateAbort:
      if (session_hooks_.abort) return session_hooks_.abort(env.migrate_abort());
      Fail(-EPROTO, "control: migrate_abort, but this shell cannot migrate");
      return false;
    case control::Envelope::kMigrateCommit:
      if (session_hooks_.commit) return session_hooks_.commit(env.migrate_commit());
      Fail(-EPROTO, "control: migrate_commit, but this shell cannot migrate");
      return false;
    default: {
      control::Envelope r;
      r.mutable_error()->set_code(control::Error::UNEXPECTED);
      r.mutable_error()->set_message(
          absl::StrCat("shell does not accept ", BodyName(env), " from the agent"));
      (void)Send(std::move(r));
      Fail(-EPROTO, absl::StrCat("control: unexpected ", BodyName(env), " from the agent"));
      return false;
    }
  }
}

}  // namespace npa::shell
