#include "hypervisor/migration/migration_channel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/control_codec.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/migration/migration_state.h"
#include "hypervisor/migration/migration_table.h"

namespace npa::migration {
namespace {

uint64_t DeadlineAfter(int ms) { return MonotonicNs() + static_cast<uint64_t>(ms < 0 ? 0 : ms) * 1000000ull; }

int RemainingMs(uint64_t deadline_ns) {
  const uint64_t now = MonotonicNs();
  if (now >= deadline_ns) return 0;
  const uint64_t ms = (deadline_ns - now + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

void Wake(int efd) {
  const uint64_t one = 1;
  ssize_t n = write(efd, &one, sizeof(one));
  (void)n;  // an eventfd write fails only when the counter is saturated: still readable
}

void Drain(int efd) {
  uint64_t v;
  ssize_t n = read(efd, &v, sizeof(v));
  (void)n;  // EAGAIN: nothing pending
}

control::Envelope ErrorEnvelope(control::Error::Code code, const std::string& msg) {
  control::Envelope env;
  env.mutable_error()->set_code(code);
  env.mutable_error()->set_message(msg);
  return env;
}

std::string SockAddrString(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return absl::StrCat(host, ":", port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
    return absl::StrCat("[", host, "]:", port);
  }
  return "?";
}

}  // namespace

control::Error::Code ErrorCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kResourceExhausted: return control::Error::LIMIT;
    case absl::StatusCode::kPermissionDenied: return control::Error::DENIED;
    case absl::StatusCode::kInvalidArgument: return control::Error::MALFORMED;
    case absl::StatusCode::kFailedPrecondition: return control::Error::UNEXPECTED;
    case absl::StatusCode::kNotFound: return control::Error::NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnavailable: return control::Error::BUSY;
    default: return control::Error::INTERNAL;
  }
}

absl::StatusCode StatusCodeFor(control::Error::Code c) {
  switch (c) {
    case control::Error::LIMIT: return absl::StatusCode::kResourceExhausted;
    case control::Error::DENIED: return absl::StatusCode::kPermissionDenied;
    case control::Error::MALFORMED: return absl::StatusCode::kInvalidArgument;
    case control::Error::UNEXPECTED:
    case control::Error::VERSION: return absl::StatusCode::kFailedPrecondition;
    case control::Error::NOT_FOUND: return absl::StatusCode::kNotFound;
    case control::Error::BUSY: return absl::StatusCode::kUnavailable;
    default: return absl::StatusCode::kInternal;
  }
}

// ============================================================== listener

struct MigrationListener::Conn {
  uint64_t number = 0;
  UniqueFd sock;
  std::string addr;
  UniqueFd wake;  // eventfd: SendDone queued something
  std::thread thread;
  std::atomic<bool> finished{false};
  std::unique_ptr<TlsChannel> ch;  // the connection thread's only

  std::mutex mu;  // the fields below: SendDone reads them from other threads
  uint64_t migration_id = 0;       // the accepted offer's, 0 before
  std::optional<DestMigration> mig;
  std::deque<control::Envelope> outbox;
  bool done_queued = false;

  // Connection thread only.
  std::string name, mac;  // from the accepted offer
  bool late_last = false;
};

absl::StatusOr<std::unique_ptr<MigrationListener>> MigrationListener::Start(const std::string& host_port,
                                                                            const TlsConfig& tls,
                                                                            DestinationHandler* handler,
                                                                            ListenerOptions opt) {
  if (!handler) return absl::InvalidArgumentError("migration listener: no handler");
  if (opt.max_connections < 1) opt.max_connections = 1;
  std::string host;
  uint16_t port = 0;
  NPA_RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port));
  std::unique_ptr<MigrationListener> l(new MigrationListener(handler, opt));
  NPA_ASSIGN_OR_RETURN(l->ctx_, TlsContext::Create(tls, TlsRole::kServer));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const int g = getaddrinfo(host == "*" ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (g != 0 || !res)
    return absl::InvalidArgumentError(absl::StrCat("migration listener ", host_port, ": cannot resolve ",
                                                   host, ": ", gai_strerror(g)));
  l->listen_fd_.reset(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!l->listen_fd_) {
    freeaddrinfo(res);
    return ErrnoError(errno, "migration listener ", host_port, ": socket");
  }
  const int one = 1;
  setsockopt(l->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int b = bind(l->listen_fd_.get(), res->ai_addr, res->ai_addrlen);
  const int berr = errno;
  freeaddrinfo(res);
  if (b != 0) return ErrnoError(berr, "migration listener: bind ", host_port);
  if (listen(l->listen_fd_.get(), 16) != 0) return ErrnoError(errno, "migration listener: listen ", host_port);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(l->listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  l->port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  l->stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!l->stop_fd_) return ErrnoError(errno, "migration listener: eventfd");
  NPA_LOG(Info, "migration listener: listening on %s (port %u) as %s", host_port.c_str(), l->port_,
          l->ctx_->own_name().c_str());
  MigrationListener* self = l.get();
  l->accept_thread_ = std::thread([self] { self->AcceptLoop(); });
  return l;
}

MigrationListener::~MigrationListener() { Stop(); }

void MigrationListener::Stop() {
  if (stopped_.exchange(true)) return;
  Wake(stop_fd_.get());
  if (accept_thread_.joinable()) accept_thread_.join();
  std::map<uint64_t, std::shared_ptr<Conn>> conns;
  {
    std::lock_guard<std::mutex> g(mu_);
    conns.swap(conns_);
  }
  for (auto& [n, c] : conns)
    if (c->thread.joinable()) c->thread.join();
  listen_fd_.reset();
}

void MigrationListener::AcceptLoop() {
  for (;;) {
    // Reap finished connections: their threads have ended or are ending.
    {
      std::lock_guard<std::mutex> g(mu_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (it->second->finished.load()) {
          if (it->second->thread.joinable()) it->second->thread.join();
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
    }
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    const int n = poll(p, 2, 1000);  // wakes now and then to reap
    if (n < 0 && errno != EINTR) {
      NPA_LOG(Error, "migration listener: poll: %s", strerror(errno));
      return;
    }
    if (p[1].revents & POLLIN) return;
    if (!(p[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    UniqueFd s(accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC));
    if (!s) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again later
    const std::string addr = SockAddrString(ss);
    if (open_.load() >= opt_.max_connections) {
      NPA_LOG(Warn, "migration listener: connection from %s refused: %d connections open (limit)",
              addr.c_str(), open_.load());
      continue;  // closes it
    }
    auto c = std::make_shared<Conn>();
    c->sock = std::move(s);
    c->addr = addr;
    c->wake.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!c->wake) {
      NPA_LOG(Warn, "migration listener: connection from %s refused: eventfd: %s", addr.c_str(), strerror(errno));
      continue;
    }
    open_++;
    std::lock_guard<std::mutex> g(mu_);
    c->number = next_conn_++;
    conns_[c->number] = c;
    c->thread = std::thread([this, c] { Serve(c); });
  }
}

void MigrationListener::Serve(std::shared_ptr<Conn> c) {
  absl::Status why;
  auto ch = TlsChannel::Accept(std::move(c->sock), c->addr, ctx_, opt_.handshake_timeout_ms, stop_fd_.get());
  if (!ch.ok()) {
    why = ch.status();
    NPA_LOG(Warn, "migration listener: connection from %s refused: %s", c->addr.c_str(),
            why.ToString().c_str());
  } else {
    c->ch = std::move(*ch);
    NPA_LOG(Info, "migration listener: %s connected", c->ch->peer().c_str());
    why = ServeFrames(c.get());
    NPA_LOG(Info, "migration listener: %s closed: %s", c->ch->peer().c_str(), why.ToString().c_str());
  }
  uint64_t id = 0;
  bool done = false;
  {
    std::lock_guard<std::mutex> g(c->mu);
    id = c->migration_id;
    done = c->done_queued && c->outbox.empty();
    // RELEASED (Done{resumed=false} sent) has nothing left to lose.
    if (c->mig && c->mig->state() != DestState::kReleased) {
      absl::Status f = c->mig->Fire(DestEvent::kChannelLost);
      if (!f.ok())  // the agent's own table (H2) holds the guest's recovery; here only logged
        NPA_LOG(Warn, "migration listener: %s", f.ToString().c_str());
    }
  }
  if (id != 0) {
    std::lock_guard<std::mutex> g(handler_mu_);
    handler_->OnChannelClosed(id, done ? absl::OkStatus() : why);
  }
  c->ch.reset();
  open_--;
  c->finished = true;
}

absl::Status MigrationListener::ServeFrames(Conn* c) {
  TlsChannel* ch = c->ch.get();
  uint64_t idle_deadline = DeadlineAfter(opt_.idle_timeout_ms);
  uint64_t frame_deadline = 0;
  for (;;) {
    // Replies queued by SendDone.
    Drain(c->wake.get());
    for (;;) {
      control::Envelope out;
      {
        std::lock_guard<std::mutex> g(c->mu);
        if (c->outbox.empty()) break;
        out = std::move(c->outbox.front());
        c->outbox.pop_front();
      }
      NPA_RETURN_IF_ERROR(ch->Send(std::move(out), opt_.frame_timeout_ms));
    }
    // Every complete frame.
    for (;;) {
      NPA_ASSIGN_OR_RETURN(std::optional<control::Envelope> env, ch->Pop());
      if (!env) break;
      idle_deadline = DeadlineAfter(opt_.idle_timeout_ms);
      frame_deadline = 0;
      NPA_RETURN_IF_ERROR(Handle(c, *env));
    }
    if (ch->MidFrame()) {
      if (frame_deadline == 0) frame_deadline = DeadlineAfter(opt_.frame_timeout_ms);
    } else {
      frame_deadline = 0;
    }
    const bool mid = frame_deadline != 0 && frame_deadline < idle_deadline;
    const uint64_t deadline = mid ? frame_deadline : idle_deadline;
    if (!ch->HasBuffered()) {
      const int ms = RemainingMs(deadline);
      if (ms == 0)
        return absl::DeadlineExceededError(
            mid ? absl::StrCat("peer ", ch->peer(), " stalled mid-frame for ", opt_.frame_timeout_ms, " ms")
                : absl::StrCat("peer ", ch->peer(), " sent nothing for ", opt_.idle_timeout_ms, " ms"));
      pollfd p[3] = {{ch->fd(), POLLIN, 0}, {c->wake.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
      const int n = poll(p, 3, ms);
      if (n < 0 && errno != EINTR) return ErrnoError(errno, "migration listener: poll for ", ch->peer());
      if (p[2].revents & POLLIN) return absl::CancelledError("migration listener stopped");
      if (p[1].revents & POLLIN) continue;  // flush first
      if (!(p[0].revents)) continue;
    }
    NPA_RETURN_IF_ERROR(ch->ReadAvailable());
  }
}

absl::Status MigrationListener::Handle(Conn* c, const control::Envelope& env) {
  TlsChannel* ch = c->ch.get();
  // A protocol violation: tell the peer why (best effort), then close.
  auto violation = [&](const std::string& msg) {
    const std::string full = absl::StrCat("migration channel from ", ch->peer(), ": ", msg);
    absl::Status s = ch->Send(ErrorEnvelope(control::Error::UNEXPECTED, full), opt_.frame_timeout_ms);
    if (!s.ok()) NPA_LOG(Debug, "migration listener: error reply to %s: %s", ch->peer().c_str(), s.ToString().c_str());
    return absl::FailedPreconditionError(full);
  };
  switch (env.body_case()) {
    case control::Envelope::kMigrationOffer: {
      const control::MigrationState& st = env.migration_offer().state();
      {
        std::lock_guard<std::mutex> g(c->mu);
        if (c->migration_id != 0)
          return violation(absl::StrCat("an offer while migration ", c->migration_id,
                                        " is accepted on this connection (one per connection)"));
      }
      control::Envelope reply;
      control::MigrationAccept* acc = reply.mutable_migration_accept();
      acc->set_migration_id(st.migration_id());
      absl::Status ok = CheckMigrationState(st, StateStage::kOffer);
      if (ok.ok()) {
        absl::StatusOr<control::MigrationAccept> a;
        {
          std::lock_guard<std::mutex> g(handler_mu_);
          a = handler_->OnOffer(st, ch->peer_name());
        }
        if (a.ok()) {
          *acc = std::move(*a);
          acc->set_migration_id(st.migration_id());
          acc->clear_error();
        } else {
          ok = a.status();
        }
      }
      if (!ok.ok()) {
        NPA_LOG(Info, "migration listener: offer %lu of guest %s from %s refused: %s",
                static_cast<unsigned long>(st.migration_id()), st.name().c_str(), ch->peer().c_str(),
                ok.ToString().c_str());
        acc->mutable_error()->set_code(ErrorCodeFor(ok));
        acc->mutable_error()->set_message(std::string(ok.message()));
      } else {
        std::lock_guard<std::mutex> g(c->mu);
        c->migration_id = st.migration_id();
        c->mig.emplace(st.name());
        c->name = st.name();
        c->mac = st.mac();
      }
      reply.set_seq(env.seq());
      return ch->Send(std::move(reply), opt_.frame_timeout_ms);
    }
    case control::Envelope::kMigrationCommit: {
      const control::MigrationState& st = env.migration_commit().state();
      uint64_t id;
      {
        std::lock_guard<std::mutex> g(c->mu);
        id = c->migration_id;
        if (!c->mig) return violation("a commit before any accepted offer");
        if (!c->mig->CanFire(DestEvent::kCommit)) return violation(std::string(c->mig->Fire(DestEvent::kCommit).message()));
      }
      control::Envelope reply;
      reply.set_seq(env.seq());
      control::MigrationCommitted* done = reply.mutable_migration_committed();
      done->set_migration_id(id);
      absl::Status ok = CheckMigrationState(st, StateStage::kCommit);
      if (ok.ok() && (st.migration_id() != id || st.name() != c->name || st.mac() != c->mac))
        ok = absl::InvalidArgumentError(absl::StrCat(
            "commit of migration ", st.migration_id(), " (guest ", st.name(), ", MAC ", MacString(st.mac()),
            ") does not match the accepted offer ", id, " (guest ", c->name, ", MAC ", MacString(c->mac), ")"));
      if (ok.ok()) {
        std::lock_guard<std::mutex> g(handler_mu_);
        ok = handler_->OnCommit(st);
      }
      if (ok.ok()) {
        std::lock_guard<std::mutex> g(c->mu);
        ok = c->mig->Fire(DestEvent::kCommit);
      }
      if (!ok.ok()) {
        NPA_LOG(Info, "migration listener: commit of migration %lu from %s refused: %s",
                static_cast<unsigned long>(id), ch->peer().c_str(), ok.ToString().c_str());
        done->mutable_error()->set_code(ErrorCodeFor(ok));
        done->mutable_error()->set_message(std::string(ok.message()));
      }
      return ch->Send(std::move(reply), opt_.frame_timeout_ms);
    }
    case control::Envelope::kMigrationLateFrames: {
      const control::MigrationLateFrames& lf = env.migration_late_frames();
      uint64_t id;
      {
        std::lock_guard<std::mutex> g(c->mu);
        id = c->migration_id;
        const bool committed = c->mig && (c->mig->state() == DestState::kResuming ||
                                          c->mig->state() == DestState::kRunning);
        if (!committed) return violation("late frames before the commit");
      }
      if (lf.migration_id() != id)
        return violation(absl::StrCat("late frames for migration ", lf.migration_id(), "; this connection carries ", id));
      if (c->late_last) return violation(absl::StrCat("late frames of migration ", id, " after the last batch"));
      c->late_last = lf.last();
      std::vector<std::string> frames(lf.frames().begin(), lf.frames().end());
      std::lock_guard<std::mutex> g(handler_mu_);
      handler_->OnLateFrames(id, std::move(frames), lf.dropped(), lf.last());
      return absl::OkStatus();
    }
    case control::Envelope::kError:
      return absl::AbortedError(absl::StrCat("peer ", ch->peer(), " sent an error: ", env.error().message()));
    default:
      return violation(absl::StrCat(BodyName(env), " is not a message of the migration channel"));
  }
}

absl::Status MigrationListener::SendDone(uint64_t migration_id, bool resumed, const std::string& reason) {
  std::shared_ptr<Conn> target;
  if (migration_id == 0) return absl::InvalidArgumentError("SendDone: migration id 0");
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& [n, c] : conns_) {
      if (c->finished.load()) continue;
      std::lock_guard<std::mutex> cg(c->mu);
      if (c->migration_id == migration_id) {
        target = c;
        break;
      }
    }
  }
  if (!target)
    return absl::NotFoundError(absl::StrCat("migration ", migration_id, ": no open channel to its source"));
  {
    std::lock_guard<std::mutex> g(target->mu);
    if (!target->mig || target->done_queued)
      return absl::FailedPreconditionError(absl::StrCat("migration ", migration_id, ": done already sent"));
    NPA_RETURN_IF_ERROR(target->mig->Fire(resumed ? DestEvent::kResumed : DestEvent::kHoldExpired));
    control::Envelope env;
    control::MigrationDone* d = env.mutable_migration_done();
    d->set_migration_id(migration_id);
    d->set_resumed(resumed);
    d->set_reason(reason);
    target->outbox.push_back(std::move(env));
    target->done_queued = true;
  }
  Wake(target->wake.get());
  return absl::OkStatus();
}

// ================================================================ client

absl::StatusOr<std::unique_ptr<MigrationClient>> MigrationClient::Connect(const std::string& host_port,
                                                                          const TlsConfig& tls,
                                                                          int timeout_ms) {
  NPA_ASSIGN_OR_RETURN(std::shared_ptr<TlsContext> ctx, TlsContext::Create(tls, TlsRole::kClient));
  NPA_ASSIGN_OR_RETURN(std::unique_ptr<TlsChannel> ch, TlsChannel::Connect(host_port, ctx, timeout_ms));
  NPA_LOG(Info, "migration: connected to %s", ch->peer().c_str());
  return std::unique_ptr<MigrationClient>(new MigrationClient(std::move(ch)));
}

MigrationClient::~MigrationClient() = default;

absl::StatusOr<control::Envelope> MigrationClient::Await(control::Envelope::BodyCase want, int timeout_ms,
                                                         const char* what) {
  NPA_ASSIGN_OR_RETURN(control::Envelope env, ch_->Receive(timeout_ms));
  if (env.body_case() == want) return env;
  if (env.body_case() == control::Envelope::kError)
    return absl::Status(StatusCodeFor(env.error().code()),
                        absl::StrCat("destination ", ch_->peer(), " refused the ", what, ": ",
                                     env.error().message()));
  return absl::FailedPreconditionError(absl::StrCat("destination ", ch_->peer(), " answered the ", what,
                                                    " with ", BodyName(env)));
}

absl::StatusOr<control::MigrationAccept> MigrationClient::Offer(const control::MigrationState& state,
                                                                int timeout_ms) {
  if (migration_id_ != 0)
    return absl::FailedPreconditionError(absl::StrCat("migration ", migration_id_,
                                                      " already accepted on this channel"));
  absl::Status ok = CheckMigrationState(state, StateStage::kOffer);
  if (!ok.ok()) return absl::Status(ok.code(), absl::StrCat("offer not sent: ", ok.message()));
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  control::Envelope env;
  *env.mutable_migration_offer()->mutable_state() = state;
  NPA_RETURN_IF_ERROR(ch_->Send(std::move(env), timeout_ms));
  NPA_ASSIGN_OR_RETURN(control::Envelope reply,
                       Await(control::Envelope::kMigrationAccept, RemainingMs(deadline), "offer"));
  control::MigrationAccept acc = std::move(*reply.mutable_migration_accept());
  if (acc.has_error())
    return absl::Status(StatusCodeFor(acc.error().code()),
                        absl::StrCat("destination ", ch_->peer(), " refused the offer: ", acc.error().message()));
  if (acc.migration_id() != state.migration_id())
    return absl::InternalError(absl::StrCat("destination ", ch_->peer(), " accepted migration ",
                                            acc.migration_id(), ", not ", state.migration_id()));
  migration_id_ = acc.migration_id();
  return acc;
}

absl::Status MigrationClient::Commit(const control::MigrationState& state, int timeout_ms) {
  if (migration_id_ == 0 || committed_)
    return absl::FailedPreconditionError(committed_ ? "migration already committed"
                                                    : "commit before an accepted offer");
  if (state.migration_id() != migration_id_)
    return absl::InvalidArgumentError(absl::StrCat("commit of migration ", state.migration_id(),
                                                   " on the channel of migration ", migration_id_));
  absl::Status ok = CheckMigrationState(state, StateStage::kCommit);
  if (!ok.ok()) return absl::Status(ok.code(), absl::StrCat("commit not sent: ", ok.message()));
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  control::Envelope env;
  *env.mutable_migration_commit()->mutable_state() = state;
  NPA_RETURN_IF_ERROR(ch_->Send(std::move(env), timeout_ms));
  NPA_ASSIGN_OR_RETURN(control::Envelope reply,
                       Await(control::Envelope::kMigrationCommitted, RemainingMs(deadline), "commit"));
  const control::MigrationCommitted& c = reply.migration_committed();
  if (c.has_error())
    return absl::Status(StatusCodeFor(c.error().code()),
                        absl::StrCat("destination ", ch_->peer(), " refused the commit: ", c.error().message()));
  committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MigrationClient::SendLateFrames(uint64_t migration_id, std::vector<std::string> frames,
                                                         uint64_t dropped, bool last, int timeout_ms) {
  if (!committed_ || migration_id != migration_id_)
    return absl::FailedPreconditionError(absl::StrCat("late frames of migration ", migration_id,
                                                      ": not committed on this channel"));
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  // Room for the frames in one envelope: the limit less the envelope's own
  // fields (version, seq, id, dropped, last: under 64 bytes).
  constexpr size_t kBudget = kMaxControlFrame - 64;
  uint64_t oversize = 0;
  control::Envelope env;
  size_t used = 0;
  auto flush = [&](bool final_batch) -> absl::Status {
    control::MigrationLateFrames* lf = env.mutable_migration_late_frames();
    lf->set_migration_id(migration_id);
    if (final_batch) {
      lf->set_dropped(dropped + oversize);
      lf->set_last(last);
    }
    absl::Status s = ch_->Send(std::move(env), RemainingMs(deadline));
    env.Clear();
    used = 0;
    return s;
  };
  for (std::string& f : frames) {
    const size_t cost = f.size() + 6;  // tag + length varint (<= 3 bytes under 64 KiB) + slack
    if (cost > kBudget) {
      oversize++;
      continue;
    }
    if (used + cost > kBudget) NPA_RETURN_IF_ERROR(flush(false));
    env.mutable_migration_late_frames()->add_frames(std::move(f));
    used += cost;
  }
  if (used > 0 || last || dropped + oversize > 0) NPA_RETURN_IF_ERROR(flush(true));
  return oversize;
}

absl::StatusOr<control::MigrationDone> MigrationClient::AwaitDone(int timeout_ms) {
  if (!committed_) return absl::FailedPreconditionError("await done before the commit");
  NPA_ASSIGN_OR_RETURN(control::Envelope env, Await(control::Envelope::kMigrationDone, timeout_ms, "migration"));
  if (env.migration_done().migration_id() != migration_id_)
    return absl::InternalError(absl::StrCat("destination ", ch_->peer(), " reported done for migration ",
                                            env.migration_done().migration_id(), ", not ", migration_id_));
  return env.migration_done();
}

}  // namespace npa::migration
