#include "hypervisor/migration/tls_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/control_codec.h"
#include "common/status_macros.h"

namespace npa::migration {
namespace {

// ---- a socket BIO that never raises SIGPIPE ---------------------------
// OpenSSL's own socket BIO writes with write(2); a peer that closed would
// kill the agent with SIGPIPE unless the whole process ignores it. This one
// uses send(MSG_NOSIGNAL) and recv, non-blocking, with OpenSSL's retry flags.

int BioFd(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int BioWrite(BIO* b, const char* buf, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(BioFd(b), buf, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int BioRead(BIO* b, char* buf, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(BioFd(b), buf, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) {  // NOLINT(runtime/int): OpenSSL's signature
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int BioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* SocketMethod() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "npa nosigpipe socket");
    BIO_meth_set_write(meth, BioWrite);
    BIO_meth_set_read(meth, BioRead);
    BIO_meth_set_ctrl(meth, BioCtrl);
    BIO_meth_set_create(meth, BioCreate);
    return meth;
  }();
  return m;
}

// Every queued OpenSSL reason, "a; b", and whether one of them is a refused
// certificate (ours or the peer's).
std::string DrainErrors(bool* cert_refused) {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    const int r = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        (r == SSL_R_CERTIFICATE_VERIFY_FAILED || r == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
         r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || r == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
         r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE || r == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED ||
         r == SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE || r == SSL_R_TLSV1_ALERT_ACCESS_DENIED ||
         r == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN))
      *cert_refused = true;
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : absl::StrCat("OpenSSL error 0x", absl::Hex(e));
  }
  return out;
}

std::string SslFileError(const char* what, const std::string& file) {
  bool unused = false;
  std::string why = DrainErrors(&unused);
  return absl::StrCat("TLS ", what, " ", file, ": ", why.empty() ? "unreadable" : why);
}

std::string SubjectCn(X509* cert) {
  if (!cert) return "";
  char buf[256] = {0};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  if (n <= 0) return "";
  std::string cn(buf, static_cast<size_t>(n) < sizeof(buf) ? static_cast<size_t>(n) : sizeof(buf) - 1);
  for (char& c : cn)  // for logs: a CN is the peer's text
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return cn;
}

// TLS 1.3 session tickets arrive after the server has checked the client's
// certificate: the client's proof that it was accepted (see Connect).
int OnNewSession(SSL* ssl, SSL_SESSION*) {
  bool* seen = static_cast<bool*>(SSL_get_app_data(ssl));
  if (seen) *seen = true;
  return 0;  // not kept: no resumption between agents
}

int RemainingMs(uint64_t deadline_ns) {
  const uint64_t now = MonotonicNs();
  if (now >= deadline_ns) return 0;
  const uint64_t ms = (deadline_ns - now + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

uint64_t DeadlineAfter(int timeout_ms) {
  return MonotonicNs() + static_cast<uint64_t>(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsConfig& cfg, TlsRole role) {
  if (cfg.cert_file.empty() || cfg.key_file.empty() || cfg.ca_file.empty())
    return absl::InvalidArgumentError(
        "TLS: certificate, key and CA files are all required (--tls-cert, --tls-key, --tls-ca)");
  for (const std::string* f : {&cfg.cert_file, &cfg.key_file, &cfg.ca_file})
    if (access(f->c_str(), R_OK) != 0) return ErrnoError(errno, "TLS: cannot read ", *f);
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(role == TlsRole::kServer ? TLS_server_method() : TLS_client_method());
  if (!ctx) return absl::InternalError(SslFileError("context for", cfg.cert_file));
  auto fail = [&](const char* what, const std::string& file) {
    std::string msg = SslFileError(what, file);
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(msg);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert_file.c_str()) != 1)
    return fail("certificate", cfg.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("key", cfg.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1) return fail("key does not match the certificate:", cfg.key_file);
  if (SSL_CTX_load_verify_locations(ctx, cfg.ca_file.c_str(), nullptr) != 1)
    return fail("CA", cfg.ca_file);
  // Both sides require and verify the peer's certificate against the CA.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  if (role == TlsRole::kServer) {
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(cfg.ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);  // the client's sign that its certificate passed
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, OnNewSession);
  }
  ERR_clear_error();
  std::string own = SubjectCn(SSL_CTX_get0_certificate(ctx));
  return std::shared_ptr<TlsContext>(new TlsContext(ctx, role, std::move(own)));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::Status SplitHostPort(const std::string& host_port, std::string* host, uint16_t* port) {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("address \"", host_port, "\": ", why,
                                                   " (want HOST:PORT or [V6]:PORT)"));
  };
  std::string h, p;
  if (!host_port.empty() && host_port[0] == '[') {
    const size_t close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':')
      return bad("unbalanced brackets");
    h = host_port.substr(1, close - 1);
    p = host_port.substr(close + 2);
  } else {
    const size_t colon = host_port.rfind(':');
    if (colon == std::string::npos) return bad("no port");
    h = host_port.substr(0, colon);
    p = host_port.substr(colon + 1);
    if (h.find(':') != std::string::npos) return bad("an IPv6 address needs brackets");
  }
  if (h.empty()) return bad("no host");
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return bad("port is not a number");
  const unsigned long v = std::stoul(p);
  if (v > 65535) return bad("port over 65535");
  *host = h;
  *port = static_cast<uint16_t>(v);
  return absl::OkStatus();
}

TlsChannel::TlsChannel(UniqueFd sock, std::string addr, std::shared_ptr<TlsContext> ctx, int cancel_fd)
    : sock_(std::move(sock)), peer_addr_(std::move(addr)), ctx_(std::move(ctx)), cancel_fd_(cancel_fd) {}

TlsChannel::~TlsChannel() {
  if (ssl_) {
    // close_notify, best effort: the socket is non-blocking, so this never waits.
    if (!closed_ && SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
    SSL_free(ssl_);
    ERR_clear_error();
  }
}

std::string TlsChannel::peer() const {
  if (peer_name_.empty()) return peer_addr_;
  return absl::StrCat(peer_addr_, " (CN ", peer_name_, ")");
}

absl::Status TlsChannel::Wait(bool want_write, uint64_t deadline_ns, const char* what) {
  for (;;) {
    const int ms = RemainingMs(deadline_ns);
    if (ms == 0)
      return absl::DeadlineExceededError(absl::StrCat("TLS peer ", peer(), ": ", what, " timed out"));
    pollfd p[2] = {{sock_.get(), static_cast<short>(want_write ? POLLOUT : POLLIN), 0},
                   {cancel_fd_, POLLIN, 0}};
    const int n = poll(p, cancel_fd_ >= 0 ? 2 : 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "TLS peer ", peer(), ": poll");
    }
    if (cancel_fd_ >= 0 && (p[1].revents & POLLIN))
      return absl::CancelledError(absl::StrCat("TLS peer ", peer(), ": ", what, " cancelled"));
    // Readiness, or an error/hang-up OpenSSL will now report itself.
    if (p[0].revents) return absl::OkStatus();
  }
}

absl::Status TlsChannel::SslError(int ret, const char* what) {
  const int err = SSL_get_error(ssl_, ret);
  const int saved_errno = errno;
  bool cert_refused = false;
  std::string why = DrainErrors(&cert_refused);
  if (err == SSL_ERROR_ZERO_RETURN) {
    closed_ = true;
    return absl::UnavailableError(absl::StrCat("TLS peer ", peer(), " closed the connection (", what, ")"));
  }
  if (err == SSL_ERROR_SYSCALL && why.empty()) {
    closed_ = true;
    if (ret == 0 || saved_errno == 0)
      return absl::UnavailableError(
          absl::StrCat("TLS peer ", peer(), " closed the connection without close_notify (", what, ")"));
    return ErrnoError(saved_errno, "TLS peer ", peer(), ": ", what);
  }
  const long vr = ssl_ ? SSL_get_verify_result(ssl_) : X509_V_OK;
  if (vr != X509_V_OK) {
    cert_refused = true;
    why = absl::StrCat(why.empty() ? "certificate verify failed" : why, ": ",
                       X509_verify_cert_error_string(vr));
  }
  if (why.empty()) why = absl::StrCat("SSL error ", err);
  const std::string msg = absl::StrCat("TLS peer ", peer(), ": ", what, " failed: ", why);
  return cert_refused ? absl::PermissionDeniedError(msg) : absl::UnavailableError(msg);
}

absl::Status TlsChannel::Handshake(uint64_t deadline_ns) {
  ssl_ = SSL_new(ctx_->ctx());
  if (!ssl_) return absl::InternalError(absl::StrCat("TLS peer ", peer(), ": SSL_new failed"));
  BIO* bio = BIO_new(SocketMethod());
  if (!bio) return absl::InternalError(absl::StrCat("TLS peer ", peer(), ": BIO_new failed"));
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(sock_.get())));
  SSL_set_bio(ssl_, bio, bio);  // ssl_ owns it
  SSL_set_app_data(ssl_, &ticket_seen_);
  if (ctx_->role() == TlsRole::kServer)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) break;
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      NPA_RETURN_IF_ERROR(Wait(e == SSL_ERROR_WANT_WRITE, deadline_ns, "handshake"));
      continue;
    }
    return SslError(r, "handshake");
  }
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert)  // SSL_VERIFY_FAIL_IF_NO_PEER_CERT makes this unreachable; belt and braces
    return absl::PermissionDeniedError(absl::StrCat("TLS peer ", peer(), " presented no certificate"));
  peer_name_ = SubjectCn(cert);
  X509_free(cert);
  return absl::OkStatus();
}

absl::Status TlsChannel::WaitTicket(uint64_t deadline_ns) {
  while (!ticket_seen_) {
    char c;
    ERR_clear_error();
    const int r = SSL_peek(ssl_, &c, 1);  // processes records, consumes no data
    if (r > 0) return absl::OkStatus();   // the server already speaks: it accepted us
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (ticket_seen_) break;
      absl::Status w = Wait(e == SSL_ERROR_WANT_WRITE, deadline_ns, "waiting for the server to accept our certificate");
      if (!w.ok()) return w;
      continue;
    }
    return SslError(r, "server's verdict on our certificate");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsChannel>> TlsChannel::Connect(const std::string& host_port,
                                                                std::shared_ptr<TlsContext> ctx,
                                                                int timeout_ms, int cancel_fd) {
  if (!ctx || ctx->role() != TlsRole::kClient)
    return absl::InvalidArgumentError("TlsChannel::Connect needs a client TlsContext");
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  std::string host;
  uint16_t port = 0;
  NPA_RETURN_IF_ERROR(SplitHostPort(host_port, &host, &port));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int g = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (g != 0 || !res)
    return absl::UnavailableError(absl::StrCat("TLS peer ", host_port, ": cannot resolve ", host, ": ",
                                               gai_strerror(g)));
  UniqueFd s(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) {
    freeaddrinfo(res);
    return ErrnoError(errno, "TLS peer ", host_port, ": socket");
  }
  const int rc = connect(s.get(), res->ai_addr, res->ai_addrlen);
  const int cerr = errno;
  freeaddrinfo(res);
  if (rc != 0 && cerr != EINPROGRESS) return ErrnoError(cerr, "TLS peer ", host_port, ": connect");
  std::unique_ptr<TlsChannel> ch(new TlsChannel(std::move(s), host_port, std::move(ctx), cancel_fd));
  if (rc != 0) {
    NPA_RETURN_IF_ERROR(ch->Wait(true, deadline, "TCP connect"));
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    getsockopt(ch->fd(), SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) return ErrnoError(soerr, "TLS peer ", host_port, ": connect");
  }
  const int one = 1;
  setsockopt(ch->fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  NPA_RETURN_IF_ERROR(ch->Handshake(deadline));
  NPA_RETURN_IF_ERROR(ch->WaitTicket(deadline));
  return ch;
}

absl::StatusOr<std::unique_ptr<TlsChannel>> TlsChannel::Accept(UniqueFd sock, std::string peer,
                                                               std::shared_ptr<TlsContext> ctx,
                                                               int timeout_ms, int cancel_fd) {
  if (!ctx || ctx->role() != TlsRole::kServer)
    return absl::InvalidArgumentError("TlsChannel::Accept needs a server TlsContext");
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  const int fl = fcntl(sock.get(), F_GETFL);
  if (fl < 0 || fcntl(sock.get(), F_SETFL, fl | O_NONBLOCK) < 0)
    return ErrnoError(errno, "TLS peer ", peer, ": O_NONBLOCK");
  const int one = 1;
  setsockopt(sock.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::unique_ptr<TlsChannel> ch(new TlsChannel(std::move(sock), std::move(peer), std::move(ctx), cancel_fd));
  NPA_RETURN_IF_ERROR(ch->Handshake(deadline));
  return ch;
}

absl::Status TlsChannel::Send(control::Envelope env, int timeout_ms) {
  if (!ssl_ || closed_) return absl::FailedPreconditionError(absl::StrCat("TLS peer ", peer(), ": channel closed"));
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  env.set_major(kControlMajor);
  env.set_minor(kControlMinor);
  if (env.seq() == 0) env.set_seq(next_seq_++);
  env.set_fd_count(0);
  const std::string frame = EncodeFrame(env);
  if (frame.size() - 4 > kMaxControlFrame)
    return absl::InvalidArgumentError(absl::StrCat("TLS peer ", peer(), ": ", BodyName(env), " of ",
                                                   frame.size() - 4, " bytes is over the ",
                                                   kMaxControlFrame, "-byte frame limit"));
  for (;;) {
    ERR_clear_error();
    // Without SSL_MODE_ENABLE_PARTIAL_WRITE a write is all or nothing; a
    // retry passes the same buffer, as OpenSSL requires.
    const int r = SSL_write(ssl_, frame.data(), static_cast<int>(frame.size()));
    if (r > 0) return absl::OkStatus();
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      NPA_RETURN_IF_ERROR(Wait(e == SSL_ERROR_WANT_WRITE, deadline, absl::StrCat("sending ", BodyName(env)).c_str()));
      continue;
    }
    return SslError(r, "send");
  }
}

absl::Status TlsChannel::ReadAvailable() {
  if (!ssl_ || closed_) return absl::UnavailableError(absl::StrCat("TLS peer ", peer(), ": channel closed"));
  char tmp[16384];
  // Stop once a whole frame is buffered: memory stays bounded by one frame
  // plus one read, whatever the peer sends.
  for (int i = 0; i < 64; i++) {
    if (buf_.size() >= 4) {
      uint32_t n;
      memcpy(&n, buf_.data(), 4);
      if (n == 0 || n > kMaxControlFrame)
        return absl::InvalidArgumentError(absl::StrCat("TLS peer ", peer(), ": frame length ", n,
                                                       " outside 1..", kMaxControlFrame));
      if (buf_.size() >= 4 + static_cast<size_t>(n)) return absl::OkStatus();
    }
    ERR_clear_error();
    const int r = SSL_read(ssl_, tmp, sizeof(tmp));
    if (r > 0) {
      buf_.append(tmp, static_cast<size_t>(r));
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) return absl::OkStatus();
    if (e == SSL_ERROR_WANT_WRITE) {  // a TLS 1.3 key update wants an answer
      NPA_RETURN_IF_ERROR(Wait(true, DeadlineAfter(1000), "key update"));
      continue;
    }
    return SslError(r, "receive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<control::Envelope>> TlsChannel::Pop() {
  if (buf_.size() < 4) return std::optional<control::Envelope>();
  uint32_t n;
  memcpy(&n, buf_.data(), 4);
  if (n == 0 || n > kMaxControlFrame)
    return absl::InvalidArgumentError(absl::StrCat("TLS peer ", peer(), ": frame length ", n,
                                                   " outside 1..", kMaxControlFrame));
  if (buf_.size() < 4 + static_cast<size_t>(n)) return std::optional<control::Envelope>();
  absl::StatusOr<control::Envelope> env =
      DecodeEnvelope(reinterpret_cast<const uint8_t*>(buf_.data()) + 4, n);
  buf_.erase(0, 4 + static_cast<size_t>(n));
  if (!env.ok())
    return absl::Status(env.status().code(), absl::StrCat("TLS peer ", peer(), ": ", env.status().message()));
  if (env->fd_count() != 0)
    return absl::InvalidArgumentError(absl::StrCat("TLS peer ", peer(), ": ", BodyName(*env), " claims ",
                                                   env->fd_count(), " fds; the migration channel carries none"));
  return std::optional<control::Envelope>(std::move(*env));
}

bool TlsChannel::HasBuffered() const {
  if (buf_.size() >= 4) {
    uint32_t n;
    memcpy(&n, buf_.data(), 4);
    if (n == 0 || n > kMaxControlFrame || buf_.size() >= 4 + static_cast<size_t>(n)) return true;
  }
  return ssl_ && SSL_has_pending(ssl_);
}

absl::StatusOr<control::Envelope> TlsChannel::Receive(int timeout_ms) {
  const uint64_t deadline = DeadlineAfter(timeout_ms);
  for (;;) {
    NPA_ASSIGN_OR_RETURN(std::optional<control::Envelope> env, Pop());
    if (env) return std::move(*env);
    if (!HasBuffered())
      NPA_RETURN_IF_ERROR(Wait(false, deadline, buf_.empty() ? "waiting for a frame" : "receiving a frame"));
    NPA_RETURN_IF_ERROR(ReadAvailable());
  }
}

}  // namespace npa::migration
