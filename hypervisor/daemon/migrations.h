// hypervisor/daemon/migrations.h — npa-agent's side of moving a guest to
// another agent (docs/migration.md, include/npa/control.proto "migration"):
// the source's orchestration of one `npactl migrate` per guest, the
// destination's reservations and resumes, and Hello.resume. A part of the
// control server, like VfAttachments.
//
//   Migrations mig(opts, &guests, &dataplane, connector, hooks);
//   NPA_RETURN_IF_ERROR(mig.Open());                 // its eventfd
//   loop.Watch(mig.wake_fd(), ...) -> mig.OnWake();  // work posted by threads
//   each loop turn: mig.Tick();                      // deadlines, RARP schedule
//   // source: AdminRequest.migrate
//   absl::Status refused = mig.Start(guest, req.migrate(), waiter);
//   // destination: a MigrationListener calls mig as its DestinationHandler
//
// Source (A), per guest; the migration's own table is
// migration::SourceMigration (hypervisor/migration/migration_table.h), the
// guest's is guest_lifecycle.h:
//   RUNNING [VF_ACTIVE: planned revoke first, VfAttachments' detach path]
//   -> offer (worker thread: TLS connect, MigrationOffer; B reserves)
//   -> STOPPING: HoldMac, MigratePrepare to the shell (it stops its rings)
//   -> STOP_COPY on MigrateReady: MigrationCommit with the ring indices
//   -> COMMITTED on MigrationCommitted: the guest leaves the dataplane,
//      MigrateCommit{B's path, ticket, return_path = our control socket}.
//      Held frames go to B (TakeHeld at once and every 100 ms, ReleaseMac
//      after the grace period, Options::grace_ms): what cannot be forwarded
//      is counted as lost and reported. The slot is kept for the hold
//      (Options::hold_ms + grace) so a shell that cannot reach B comes back
//      with the ticket (COMMITTED -> RESUMING -> RUNNING here).
//   -> MigrationDone{resumed}: the guest is closed here, npactl answered
//      with every phase.
// Any failure before COMMITTED (B refused, the channel broke, a deadline,
// the guest went away, MigrateReady.error): MigrateAbort to the shell (if
// its rings were stopped), the hold released and its frames delivered back
// to the guest once it runs again, the guest RUNNING on A, npactl told why.
// After COMMITTED, B lost (channel closed, MigrationDone{resumed=false}):
// the migration is ERROR; the recovery is the shell coming back with the
// ticket, or the hold ending (the guest is closed here).
//
// Destination (B): OnOffer checks the state (ValidateMigrationState: its
// features, memory, a free slot, name and MAC free) and reserves a RESUMING
// guest with a fresh 32-byte ticket; OnCommit keeps the ring indices;
// Hello.resume{ticket} (ClaimTicket) binds the shell to the reservation if
// its name, MAC, queue pairs and vrings equal the committed state's; when
// every ring is ready the control server calls OnResumed: RARP on the uplink
// at once and after Options::rarp_gaps_ms, MigrationDone to A, the late
// frames injected, then a free VF offered (Hooks::offer_vf). A hold that
// expires frees the reservation.
//
// Hello.resume without a ticket (a shell whose agent died, issue 9 part 4)
// is an ordinary new guest whose rings resume where the shell says:
// CheckResumeVrings validates them.
//
// Threads: everything runs on the control thread except the
// DestinationHandler methods (the listener's threads: they post to the
// control thread and wait, bounded, for its answer) and each source
// migration's worker thread (the blocking MigrationPeer calls; results are
// posted back). Posting writes the eventfd the control server watches: the
// control thread never blocks on the network.
// Ownership: guests, dp (may be null) outlive this object; the destructor
// joins every worker (each call on it has its own deadline).
// Errors: a refused Start is its status (npactl's AdminReply error):
// FailedPrecondition naming the guest and its state, or that this agent has
// no TLS configuration; InvalidArgument for a bad HOST:PORT.
#ifndef NPA_HYPERVISOR_DAEMON_MIGRATIONS_H_
#define NPA_HYPERVISOR_DAEMON_MIGRATIONS_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/control_codec.h"
#include "common/unique_fd.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_registry.h"
#include "hypervisor/daemon/vf_attachments.h"
#include "hypervisor/migration/migration_channel.h"
#include "hypervisor/migration/migration_state.h"
#include "hypervisor/migration/migration_table.h"

namespace npa::agent {

// AdminWaiter.fd of the planned revokes (seq = the migration id) and VF
// offers a migration asks VfAttachments for: their answer goes to
// Migrations::OnVfAnswer. Not negative (VfAttachments answers no waiter
// with fd < 0) and never a real descriptor (above any RLIMIT_NOFILE).
inline constexpr int kMigrationWaiterFd = 0x7fffffff;
inline constexpr size_t kTicketLen = 32;

// The source's connection to one destination: migration::MigrationClient in
// the agent, a loopback in tests. Used by one worker thread; every call has
// a deadline.
class MigrationPeer {
 public:
  virtual ~MigrationPeer() = default;
  virtual absl::StatusOr<control::MigrationAccept> Offer(const control::MigrationState& s,
                                                         int timeout_ms) = 0;
  virtual absl::Status Commit(const control::MigrationState& s, int timeout_ms) = 0;
  // Returns how many frames could not be sent (too large), added to dropped.
  virtual absl::StatusOr<uint64_t> SendLateFrames(uint64_t id, std::vector<std::string> frames,
                                                  uint64_t dropped, bool last) = 0;
  virtual absl::StatusOr<control::MigrationDone> AwaitDone(int timeout_ms) = 0;
};
using PeerConnector = std::function<absl::StatusOr<std::unique_ptr<MigrationPeer>>(
    const std::string& host_port, int timeout_ms)>;

// The agents' connector: migration::MigrationClient over mutual TLS with
// these files (hypervisor/migration/migration_channel.h).
PeerConnector TlsPeerConnector(const migration::TlsConfig& tls);

// Hello.resume's rings: exactly one per vring of queue_pairs (2q rx, 2q+1
// tx), each index 0..65535. InvalidArgument naming the vring otherwise.
absl::Status CheckResumeVrings(const control::Resume& r, uint32_t queue_pairs);

class Migrations : public migration::DestinationHandler {
 public:
  struct Options {
    std::string agent_name = "npa-agent";
    std::string control_path;              // MigrationAccept.control_path, MigrateCommit.return_path
    uint32_t default_timeout_ms = 30000;   // Migrate.timeout_ms 0: until COMMITTED
    uint32_t prepare_timeout_ms = 5000;    // MigratePrepare -> MigrateReady
    uint32_t step_timeout_ms = 5000;       // each call to the destination
    uint32_t grace_ms = 2000;              // late frames forwarded for this long
    uint32_t hold_ms = 10000;              // B keeps a reservation; A adds grace
    size_t max_held_frames = 4096;         // HoldMac bound, and B's late-frame buffer
    std::vector<uint32_t> rarp_gaps_ms = {50, 100, 200, 400};  // after the first RARP
    // The TLS connect + handshake to the destination (the source's client),
    // and what listener_options() gives the agent's MigrationListener for an
    // accepted peer's handshake. The lab's one TCG vCPU under load needs
    // more than the 5 s default (agent flag --migration-handshake-timeout).
    uint32_t handshake_timeout_ms = 5000;
    size_t max_guests = 256;               // slots (reservations count)
    uint64_t offloads = ~0ull;             // NPA_OFFLOAD_* this agent serves
    uint64_t virtio_features = ~0ull;      // its back end's features
    uint32_t max_queue_pairs = 16;
    uint32_t mtu = 1500;
    uint64_t max_guest_memory = 4ull << 30;
  };
  struct Hooks {
    std::function<ControlChannel*(int fd)> channel;
    // Send this (complete) AdminReply envelope to the npactl session w.fd.
    std::function<void(const AdminWaiter& w, control::Envelope reply)> reply;
    // Planned revoke of g's VF; the answer comes to OnVfAnswer(id).
    std::function<absl::Status(Guest& g, uint64_t migration_id, uint32_t timeout_ms)> revoke_vf;
    std::function<void(uint64_t guest_id, const std::string& why)> close_guest;
    // B, after a resume: offer a free VF if there is one (else later).
    std::function<void(Guest& g)> offer_vf;
    // B: MigrationDone to A (the listener's SendDone). May be empty (tests).
    std::function<absl::Status(uint64_t id, bool resumed, const std::string& reason)> send_done;
    // A's side of a move ended (once per move, whether or not its npactl
    // still waits): outcome is the source state's name ("COMMITTED") or
    // "failed: <why>". May be empty (tests).
    std::function<void(uint64_t guest_id, const std::string& guest, uint64_t duration_ns,
                       const std::string& outcome)>
        done;
  };

  // connector null: no TLS configuration, migrate is refused.
  Migrations(Options opts, GuestRegistry* guests, Dataplane* dp, PeerConnector connector,
             Hooks hooks);
  ~Migrations() override;
  Migrations(const Migrations&) = delete;
  Migrations& operator=(const Migrations&) = delete;

  absl::Status Open();
  int wake_fd() const { return wake_.get(); }
  void set_send_done(std::function<absl::Status(uint64_t, bool, const std::string&)> f) {
    hooks_.send_done = std::move(f);
  }
  // ---- control thread
  void OnWake();  // run what the other threads posted
  void Tick();    // deadlines, late frames, RARP schedule, pending injections
  // ms until the next deadline (for the loop's timeout); -1 none.
  int MsUntilNextDeadline() const;

  // The guest's MAC is now reached through this agent's uplink (a resume
  // here after a move, or its VF fell back to the emulated path:
  // VfAttachments' Hooks::path_changed): one RARP on the uplink now, then
  // one after each of Options::rarp_gaps_ms, so a learning switch moves the
  // MAC to this host's port at once. A newer announce of the same guest
  // replaces its schedule. No MAC or no dataplane: nothing.
  void AnnounceMac(const Guest& g);
  // The guest's MAC left the uplink path (a VF took it, the source holds it
  // for a move, the guest closed): its scheduled RARPs go, so none steers
  // the switch back here afterwards.
  void CancelAnnounce(const Guest& g);
  size_t num_scheduled_announces() const { return rarps_.size(); }
  // What the agent's MigrationListener uses (handshake_timeout_ms).
  migration::ListenerOptions listener_options() const;

  // Source.
  absl::Status Start(Guest& g, const control::Migrate& req, AdminWaiter w);
  bool IsMigrating(uint64_t guest_id) const;
  // The shell's MigrateReady. Non-OK: close the session (the Error was sent).
  absl::Status OnMigrateReady(ControlChannel& ch, Guest& g, const control::Envelope& env);
  void OnVfAnswer(uint64_t migration_id, const absl::Status& st, const std::string& message);
  // The guest's session or back end went away: true if the guest must be
  // kept (COMMITTED: its shell left for the destination).
  bool KeepsGuest(const Guest& g) const;
  void OnGuestClosing(Guest& g, const std::string& why);
  void ForgetAdmin(int fd);

  // Hello.resume with a ticket: the guest (RESUMING on B, COMMITTED on A
  // when the shell came back) the shell binds to, its checks passed, or the
  // refusal (NotFound: unknown ticket; InvalidArgument: a mismatch).
  absl::StatusOr<Guest*> ClaimTicket(const control::Hello& h);
  // A guest that was RESUMING is RUNNING (every ring ready).
  void OnResumed(Guest& g);
  // On B: ns from the slot's reservation (the offer) to now, for the
  // migration_in event's duration; 0 when guest_id is no migration's here.
  uint64_t SinceReservedNs(uint64_t guest_id);

  // ---- destination: any thread (the listener's)
  absl::StatusOr<control::MigrationAccept> OnOffer(const control::MigrationState& state,
                                                  const std::string& peer_name) override;
  absl::Status OnCommit(const control::MigrationState& state) override;
  void OnLateFrames(uint64_t migration_id, std::vector<std::string> frames, uint64_t dropped,
                    bool last) override;
  void OnChannelClosed(uint64_t migration_id, const absl::Status& why) override;

  size_t num_sources() const { return sources_.size(); }
  size_t num_destinations() const { return dests_.size(); }

 private:
  class Worker;
  struct Source;
  struct Dest;
  struct Inject {
    uint64_t guest_id;
    std::vector<std::string> frames;
    uint64_t not_before_ms, deadline_ms;
    std::string what;
  };

  void Post(std::function<void()> fn);
  // Runs fn on the control thread and waits up to timeout_ms for it.
  template <typename T>
  T CallOnControl(std::function<T()> fn, int timeout_ms, T on_timeout);

  // source steps
  void BeginOffer(Source& s);
  void OnOfferDone(uint64_t id, absl::StatusOr<control::MigrationAccept> acc);
  void OnCommitDone(uint64_t id, absl::Status st);
  void ForwardLate(Source& s, bool last);
  void OnLateSent(uint64_t id, size_t n, absl::StatusOr<uint64_t> oversize, uint64_t dropped);
  void OnDone(uint64_t id, absl::StatusOr<control::MigrationDone> done);
  void Abort(Source& s, const std::string& reason);
  void Finish(Source& s, const absl::Status& st, const std::string& message);
  void BeginPhase(Source& s, const std::string& name);
  void EndPhase(Source& s, const std::string& detail);
  Source* SourceById(uint64_t id);
  Source* SourceByGuest(uint64_t guest_id);
  const Source* SourceByGuest(uint64_t guest_id) const;
  void EraseSource(uint64_t id);
  control::MigrationState BaseState(const Source& s, const Guest& g) const;

  // destination steps
  absl::StatusOr<control::MigrationAccept> Reserve(const control::MigrationState& st,
                                                   const std::string& peer);
  absl::Status Committed(const control::MigrationState& st);
  void LateFrames(uint64_t id, std::vector<std::string> frames, uint64_t dropped, bool last);
  void ChannelClosed(uint64_t id, const absl::Status& why);
  void Release(Dest& d, const std::string& why);
  void SendRarp(const MacAddr& mac, const std::string& guest);
  Dest* DestByGuest(uint64_t guest_id);

  Options opts_;
  GuestRegistry* guests_;
  Dataplane* dp_;
  PeerConnector connector_;
  Hooks hooks_;
  UniqueFd wake_;
  std::mutex post_mu_;
  std::deque<std::function<void()>> posted_;
  std::map<uint64_t, std::unique_ptr<Source>> sources_;  // by migration id
  std::map<uint64_t, std::unique_ptr<Dest>> dests_;      // by migration id
  std::vector<std::unique_ptr<Worker>> retired_;         // joined once idle
  std::vector<Inject> injects_;
  struct Rarp {
    MacAddr mac;
    uint64_t due_ms;
    std::string guest;
    uint64_t guest_id;
  };
  std::vector<Rarp> rarps_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_MIGRATIONS_H_
