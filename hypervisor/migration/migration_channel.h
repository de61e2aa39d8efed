// hypervisor/migration/migration_channel.h — the agents' migration channel:
// the destination's listener (B) and the source's client (A), over
// TlsChannel (mutual TLS 1.3). docs/migration.md has the sequence; the
// messages are control.proto's Migration* (and Error).
//
// Per connection, in order (anything else is answered Error{UNEXPECTED} and
// the connection is closed):
//   A -> B  MigrationOffer{state without rings}     B -> A  MigrationAccept (or .error)
//   A -> B  MigrationCommit{state with every ring}  B -> A  MigrationCommitted (or .error)
//   A -> B  MigrationLateFrames ... {last}          (no reply)
//                                                   B -> A  MigrationDone (SendDone)
// A refused offer ends that migration; the connection may carry a new offer.
// One accepted migration per connection: a second offer after an accepted
// one is a violation (A opens a new connection per migration). Before the
// first frame, a connection has passed the TLS handshake: the handler never
// sees a peer without a certificate the CA signed.
//
// ---- Destination: MigrationListener -------------------------------------
//
//   class Handler : public DestinationHandler { ... };   // H2: the agent
//   ListenerOptions opt;                                  // defaults below
//   NPA_ASSIGN_OR_RETURN(auto listener,
//       MigrationListener::Start("0.0.0.0:7000", tls, &handler, opt));
//   ...  // handler.OnCommit(state) -> OK; later, when the shell resumed:
//   NPA_RETURN_IF_ERROR(listener->SendDone(id, true, "resumed"));
//   listener->Stop();                                     // or the destructor
//
// Threads: Start creates one accept thread; each accepted connection gets its
// own thread (at most opt.max_connections at once; more are closed at
// accept, logged). Every wait of a connection has a deadline: the handshake
// (handshake_timeout_ms), a started frame (frame_timeout_ms), no frame at all
// (idle_timeout_ms), a reply being written (frame_timeout_ms). A peer that
// sends garbage is closed at its first bad byte; one that stalls is closed at
// its deadline; neither delays the others.
// The handler's methods are called from connection threads, one call at a
// time (the listener serializes them under one mutex), so the handler needs
// no locking against itself; it must not block for long (OnOffer and
// OnCommit stall that connection's peer, which waits with its own deadline).
// SendDone and Stop may be called from any thread, including from inside a
// handler method (SendDone only queues and wakes the connection).
//
// Handler contract, per accepted migration id:
//   OnOffer(state, peer)  state passed CheckMigrationState(kOffer); the
//                         handler runs ValidateMigrationState, reserves, and
//                         returns the accept (ticket, control_path, hold_ms;
//                         migration_id is filled in) or an error status,
//                         which A receives as MigrationAccept.error with the
//                         status's message (code: ErrorCodeFor).
//   OnCommit(state)       state passed CheckMigrationState(kCommit), same
//                         migration_id, name and MAC as the offer. Error ->
//                         MigrationCommitted.error.
//   OnLateFrames(...)     after OnCommit; as A sent them (frames in order;
//                         `dropped` as A counted them).
//   OnChannelClosed(id, why)  exactly once for every id whose OnOffer
//                         succeeded, when its connection ends: why is OK if
//                         MigrationDone was sent, else the reason (peer
//                         closed, deadline, malformed frame, Stop).
//
// ---- Source: MigrationClient ---------------------------------------------
//
//   NPA_ASSIGN_OR_RETURN(auto c, MigrationClient::Connect("10.0.0.2:7000", tls, 5000));
//   NPA_ASSIGN_OR_RETURN(control::MigrationAccept acc, c->Offer(offer_state, 5000));
//   ... MigratePrepare / MigrateReady with the shell ...
//   NPA_RETURN_IF_ERROR(c->Commit(commit_state, 5000));
//   ... MigrateCommit to the shell ...
//   NPA_ASSIGN_OR_RETURN(uint64_t oversize, c->SendLateFrames(id, held, dropped, true));
//   NPA_ASSIGN_OR_RETURN(control::MigrationDone done, c->AwaitDone(hold_ms + 1000));
//
// The client is used by one thread at a time; every call has a deadline.
// Errors name the peer; a refusal by B (MigrationAccept.error,
// MigrationCommitted.error, or an Error frame) comes back as a status whose
// message is B's ("destination 127.0.0.1:7000 (CN agent-b) refused the offer:
// destination cannot serve guest g1: no free guest slot (16 of 16 in use)"),
// with the code mapped back from the Error code. After any error other than a
// refusal the connection is unusable: drop the client (the destructor closes).
#ifndef NPA_HYPERVISOR_MIGRATION_MIGRATION_CHANNEL_H_
#define NPA_HYPERVISOR_MIGRATION_MIGRATION_CHANNEL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/migration/tls_channel.h"
#include "include/npa/control.pb.h"

namespace npa::migration {

class DestinationHandler {
 public:
  virtual ~DestinationHandler() = default;
  virtual absl::StatusOr<control::MigrationAccept> OnOffer(const control::MigrationState& state,
                                                          const std::string& peer_name) = 0;
  virtual absl::Status OnCommit(const control::MigrationState& state) = 0;
  virtual void OnLateFrames(uint64_t migration_id, std::vector<std::string> frames,
                            uint64_t dropped, bool last) = 0;
  virtual void OnChannelClosed(uint64_t migration_id, const absl::Status& why) = 0;
};

struct ListenerOptions {
  int max_connections = 4;
  int handshake_timeout_ms = 5000;
  int frame_timeout_ms = 5000;    // a started frame must complete; a reply must be written
  int idle_timeout_ms = 120000;   // no frame at all (covers A's STOPPING and B's hold)
};

// control::Error code for a status (kResourceExhausted -> LIMIT,
// kPermissionDenied -> DENIED, kInvalidArgument -> MALFORMED,
// kFailedPrecondition -> UNEXPECTED... else INTERNAL) and back.
control::Error::Code ErrorCodeFor(const absl::Status& s);
absl::StatusCode StatusCodeFor(control::Error::Code c);

class MigrationListener {
 public:
  // Binds host_port (port 0: any; see port()), loads the TLS files, starts
  // the accept thread. `handler` must outlive the listener.
  static absl::StatusOr<std::unique_ptr<MigrationListener>> Start(const std::string& host_port,
                                                                  const TlsConfig& tls,
                                                                  DestinationHandler* handler,
                                                                  ListenerOptions opt = {});
  ~MigrationListener();  // Stop()
  MigrationListener(const MigrationListener&) = delete;
  MigrationListener& operator=(const MigrationListener&) = delete;

  // Queue MigrationDone for the connection carrying migration_id and wake it.
  // resumed=true needs the commit (the channel's table: RESUMING -> RUNNING);
  // resumed=false is the hold's end, legal before or after it (-> RELEASED).
  // kNotFound if no live connection carries it (closed: OnChannelClosed has
  // been or will be called), kFailedPrecondition if the table refuses it or
  // Done was already sent (the message names both state and event).
  absl::Status SendDone(uint64_t migration_id, bool resumed, const std::string& reason);

  // Closes the listening socket and every connection (each id gets
  // OnChannelClosed(kCancelled)), joins every thread. Idempotent; do not call
  // from a handler method (it would wait for itself).
  void Stop();

  uint16_t port() const { return port_; }
  // Connections open now (tests: every one closed after its deadline).
  int open_connections() const { return open_.load(); }

 private:
  struct Conn;
  MigrationListener(DestinationHandler* h, ListenerOptions opt) : handler_(h), opt_(opt) {}
  void AcceptLoop();
  void Serve(std::shared_ptr<Conn> c);
  absl::Status ServeFrames(Conn* c);
  absl::Status Handle(Conn* c, const control::Envelope& env);

  DestinationHandler* handler_;
  ListenerOptions opt_;
  std::shared_ptr<TlsContext> ctx_;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd: readable once Stop() began
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::mutex handler_mu_;  // one handler call at a time
  std::mutex mu_;          // conns_, threads_
  std::map<uint64_t, std::shared_ptr<Conn>> conns_;  // by connection number
  std::vector<std::thread> threads_;
  uint64_t next_conn_ = 1;
  std::atomic<int> open_{0};
  std::atomic<bool> stopped_{false};
};

class MigrationClient {
 public:
  static absl::StatusOr<std::unique_ptr<MigrationClient>> Connect(const std::string& host_port,
                                                                  const TlsConfig& tls,
                                                                  int timeout_ms);
  ~MigrationClient();

  // The state is checked (CheckMigrationState(kOffer)) before it is sent.
  absl::StatusOr<control::MigrationAccept> Offer(const control::MigrationState& state,
                                                 int timeout_ms);
  // CheckMigrationState(kCommit), same migration_id as the accepted offer.
  absl::Status Commit(const control::MigrationState& state, int timeout_ms);
  // Splits `frames` into MigrationLateFrames envelopes under kMaxControlFrame
  // (in order; `dropped` and `last` ride on the final one; an empty list with
  // last=true still sends one). A frame too large for any envelope is not
  // sent: it is added to the `dropped` B receives, and the count of such
  // frames is returned so A's own loss count stays exact.
  absl::StatusOr<uint64_t> SendLateFrames(uint64_t migration_id, std::vector<std::string> frames,
                                          uint64_t dropped, bool last, int timeout_ms = 5000);
  absl::StatusOr<control::MigrationDone> AwaitDone(int timeout_ms);

  const std::string& peer_name() const { return ch_->peer_name(); }  // B's certificate CN
  std::string peer() const { return ch_->peer(); }

 private:
  explicit MigrationClient(std::unique_ptr<TlsChannel> ch) : ch_(std::move(ch)) {}
  absl::StatusOr<control::Envelope> Await(control::Envelope::BodyCase want, int timeout_ms,
                                          const char* what);
  std::unique_ptr<TlsChannel> ch_;
  uint64_t migration_id_ = 0;  // of the accepted offer
  bool committed_ = false;
};

}  // namespace npa::migration

#endif  // NPA_HYPERVISOR_MIGRATION_MIGRATION_CHANNEL_H_
