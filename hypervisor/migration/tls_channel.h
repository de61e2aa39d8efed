// hypervisor/migration/tls_channel.h — one mutually authenticated TLS 1.3
// connection over TCP between two agents (OpenSSL 3), carrying control
// frames: u32 little-endian length + Envelope (common/control_codec.h),
// at most kMaxControlFrame bytes, never file descriptors.
//
// Trust: both sides present a certificate (TlsConfig, PEM files) and verify
// the peer's against the configured CA; a peer without a certificate, or with
// one the CA did not sign, is refused during the handshake with the reason
// OpenSSL gives ("certificate verify failed: self-signed certificate", "tlsv1
// alert unknown ca"). Identity is the CA's signature: the host name is not
// matched; the peer's certificate CN (peer_name()) is what logs and handlers
// see. TLS 1.3 only (SSL_CTX_set_min_proto_version).
//
// Deadlines: the socket is non-blocking and every call waits with poll(2)
// until its own deadline, so a peer that stalls (mid-handshake, mid-frame, or
// not reading) costs at most that deadline. An optional cancel fd (an eventfd
// or pipe) ends any wait with kCancelled when it becomes readable. Writes use
// send(MSG_NOSIGNAL) (a custom BIO), so a closed peer is an error, never
// SIGPIPE.
//
//   NPA_ASSIGN_OR_RETURN(auto ctx, TlsContext::Create(cfg, TlsRole::kClient));
//   NPA_ASSIGN_OR_RETURN(auto ch, TlsChannel::Connect("10.0.0.2:7000", ctx, 5000));
//   control::Envelope env;
//   env.mutable_migration_offer()->mutable_state()->CopyFrom(st);
//   NPA_RETURN_IF_ERROR(ch->Send(env, 5000));
//   NPA_ASSIGN_OR_RETURN(control::Envelope reply, ch->Receive(5000));
//
// Errors name the peer ("TLS peer 10.0.0.2:7000 (CN agent-b): ...") and what
// failed: kUnavailable for connect/handshake/closed, kDeadlineExceeded for a
// deadline, kInvalidArgument for a malformed frame (after which the channel is
// unusable: the caller closes it), kPermissionDenied for a refused
// certificate, kCancelled for the cancel fd.
//
// Threads: a TlsChannel is used by one thread at a time (OpenSSL's SSL object
// is not safe for concurrent use). A TlsContext is immutable after Create and
// shared (shared_ptr) by any number of channels and threads.
// Lifetime: the channel owns its socket; destruction sends close_notify
// (best effort, never blocks) and closes it.
#ifndef NPA_HYPERVISOR_MIGRATION_TLS_CHANNEL_H_
#define NPA_HYPERVISOR_MIGRATION_TLS_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "include/npa/control.pb.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace npa::migration {

// PEM files: this agent's certificate (chain) and key, and the CA that signs
// the agents it trusts.
struct TlsConfig {
  std::string cert_file, key_file, ca_file;
};

enum class TlsRole { kClient, kServer };

class TlsContext {
 public:
  // Loads and checks the files (the key matches the certificate; the CA
  // parses). Errors name the file and OpenSSL's reason.
  static absl::StatusOr<std::shared_ptr<TlsContext>> Create(const TlsConfig& cfg, TlsRole role);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  TlsRole role() const { return role_; }
  // CN of this side's own certificate (the agent's name in logs).
  const std::string& own_name() const { return own_name_; }

 private:
  TlsContext(SSL_CTX* ctx, TlsRole role, std::string own) : ctx_(ctx), role_(role), own_name_(std::move(own)) {}
  SSL_CTX* ctx_;
  TlsRole role_;
  std::string own_name_;
};

// "HOST:PORT" or "[V6]:PORT" -> host, port. kInvalidArgument naming the text.
absl::Status SplitHostPort(const std::string& host_port, std::string* host, uint16_t* port);

class TlsChannel {
 public:
  // TCP connect and TLS handshake as the client, all within timeout_ms. The
  // server's certificate is verified; then Connect waits for the server's
  // first post-handshake message (a TLS 1.3 session ticket), so a server that
  // refuses *our* certificate is reported here, not at the first Receive.
  static absl::StatusOr<std::unique_ptr<TlsChannel>> Connect(const std::string& host_port,
                                                             std::shared_ptr<TlsContext> ctx,
                                                             int timeout_ms, int cancel_fd = -1);
  // TLS handshake as the server on an accepted TCP socket (made non-blocking
  // here). `peer` names it in errors until the certificate's CN is known.
  static absl::StatusOr<std::unique_ptr<TlsChannel>> Accept(UniqueFd sock, std::string peer,
                                                            std::shared_ptr<TlsContext> ctx,
                                                            int timeout_ms, int cancel_fd = -1);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  // Stamps major/minor (and seq if 0; fd_count 0) and sends one frame. A body
  // over kMaxControlFrame is kInvalidArgument (nothing sent).
  absl::Status Send(control::Envelope env, int timeout_ms);
  // The next frame (DecodeEnvelope: parses, major matches, a body, no fds).
  // A started frame that does not complete within the deadline is an error
  // like any other (the peer stalled).
  absl::StatusOr<control::Envelope> Receive(int timeout_ms);

  // Event-loop form: read what has arrived without waiting, then Pop frames.
  // ReadAvailable: OK (maybe nothing), kUnavailable when the peer closed.
  absl::Status ReadAvailable();
  absl::StatusOr<std::optional<control::Envelope>> Pop();
  // True if a frame can be popped or OpenSSL holds decrypted bytes: poll
  // would not wake for them, so the loop must not wait first.
  bool HasBuffered() const;
  // True if a frame is partly received (its deadline is running).
  bool MidFrame() const { return !buf_.empty(); }

  int fd() const { return sock_.get(); }
  const std::string& peer_name() const { return peer_name_; }  // certificate CN
  const std::string& peer_address() const { return peer_addr_; }
  // "10.0.0.2:7000 (CN agent-b)", for messages.
  std::string peer() const;

 private:
  TlsChannel(UniqueFd sock, std::string addr, std::shared_ptr<TlsContext> ctx, int cancel_fd);
  absl::Status Handshake(uint64_t deadline_ns);
  absl::Status WaitTicket(uint64_t deadline_ns);
  absl::Status Wait(bool want_write, uint64_t deadline_ns, const char* what);
  absl::Status SslError(int ret, const char* what);

  UniqueFd sock_;
  std::string peer_addr_, peer_name_;
  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  int cancel_fd_ = -1;
  std::string buf_;
  uint64_t next_seq_ = 1;
  bool closed_ = false;
  bool ticket_seen_ = false;  // a session ticket arrived (client: the server accepted us)
};

}  // namespace npa::migration

#endif  // NPA_HYPERVISOR_MIGRATION_TLS_CHANNEL_H_
