// hypervisor/daemon/control_server.h — npa-agent's control thread: the
// control socket (guest shells and npactl), plain vhost-user listeners,
// sessions and the guests' lifecycles, link-state events. One thread.
//
//   ControlServer::Options o;
//   o.control_path = "/run/npa/agent.ctl";
//   o.vhost_user_paths = {"/run/npa/vhost0.sock"};
//   ControlServer srv(o, &dataplane, VhostPortFactory());
//   NPA_RETURN_IF_ERROR(srv.Listen());
//   while (!stop) NPA_RETURN_IF_ERROR(srv.RunOnce(100));   // or Run(&stop)
//   srv.Shutdown();   // Bye to every guest, sockets unlinked
//
// The parts, each its own component (header, source, test):
//   FdLoop          fd_loop.h          epoll set; readiness dispatched by fd
//                                      kind to the handlers below
//   GuestRegistry   guest_registry.h   the guests, each with its lifecycle
//                                      machine (guest_lifecycle.h)
//   Session         session.h          a control-socket connection; Error
//   AdminService    admin_service.h    npactl: AdminRequest -> AdminReply
//   VfAttachments   vf_attachments.h   RegionAnnounce, VfOffer/VfAccept,
//                                      Revoke/RevokeDone, forced detach and
//                                      the npactl requests waiting on them
//   Migrations      migrations.h       npactl migrate (source), reservations
//                                      and resumes (destination), Hello.resume
//   Hello checks,   guest_admission.h  who may become a guest; the restart
//   RestartGate                        roster and the traffic gate
// This class keeps the sessions, the Hello handshake, each guest's way from
// CONNECTED to CLOSED, and wires the parts together. Its sources:
// control_server.cc (loop, sessions, housekeeping, shutdown),
// control_server_accept.cc (accept, Hello, resume, the shell's back end) and
// control_server_guests.cc (readiness, a free VF offered, close).
//
// Two sockets (privilege separation, docs/operator-guide.md "Sockets"):
//   control socket (Options::control_path): guest shells only. An
//     AdminRequest there gets Error{DENIED, "operator requests go to the
//     admin socket ..."}: a guest session stays open and nothing changes; an
//     undecided session is closed. A guest session acts only on its own
//     guest (every guest message is applied to the session's guest).
//   admin socket (Options::admin_path, default "<control_path>.admin"):
//     npactl only; created mode 0600 and a peer whose uid is neither 0 nor
//     the agent's is refused at accept (SO_PEERCRED). A Hello there gets
//     Error{DENIED} and the session closes.
//
// Control socket protocol: include/npa/control.proto. The first frame
// decides the role:
//   Hello        -> guest session. Checked: name [A-Za-z0-9_.-]{1,63} and not
//                   in use, mac empty (the agent assigns 02:xx locally
//                   administered) or 6 bytes unicast and not in use,
//                   queue_pairs 1..max_queue_pairs, no fds. Reply: Welcome + 1
//                   fd (the shell's end of a socketpair whose other end is the
//                   guest's vhost-user back end), then LinkState.
//   AdminRequest -> npactl session: AdminReply per request, repeat.
// Anything malformed (framing, protobuf, major, fd count, content) or out of
// order => Error{code, message naming the problem}, then the session is
// closed. A session's failure never touches another session.
//
// vhost-user listeners: each accepted connection is a guest with transport
// "vhost-user-socket" (no control session; name "vhost<id>", no pinned MAC).
//
// Guest lifecycle (guest_lifecycle.h; every step asked of the table first):
// CONNECTED on accept, NEGOTIATING once its back end exists, READY when queue
// pair 0 is ready, RUNNING once the dataplane polls it, back to NEGOTIATING
// if every queue stops; the VF states through VfAttachments; BROKEN when the
// back end reports a violation or a step the table refused left the guest
// unable to go on (closed at the next loop turn); CLOSING/CLOSED on teardown.
// A guest message the table refuses gets Error{UNEXPECTED, reason} and its
// session closes; a refused npactl request gets the reason in its AdminReply.
//
// Ownership: the dataplane (may be null: no traffic, tests) and
// Options::vfs must outlive this object. Threads: every method on one thread
// (the control thread); the dataplane runs on its own.
#ifndef NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_
#define NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/control_codec.h"
#include "common/unique_fd.h"
#include "hypervisor/daemon/admin_service.h"
#include "hypervisor/daemon/agent_events.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/fd_loop.h"
#include "hypervisor/daemon/guest_admission.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/guest_registry.h"
#include "hypervisor/daemon/migrations.h"
#include "hypervisor/daemon/session.h"
#include "hypervisor/daemon/vf_attachments.h"
#include "hypervisor/vf/vf_manager.h"

namespace npa::agent {

// Control frames of one session handled per turn of the control loop; the
// rest wait for the session's next turn (fd_loop.h, "Pending").
inline constexpr uint32_t kFramesPerWake = 64;

class ControlServer {
 public:
  struct Options {
    std::string control_path;                   // "" = no control socket
    // npactl's socket; "" = control_path + ".admin" ("" too if no control
    // socket). Mode 0600.
    std::string admin_path;
    std::vector<std::string> vhost_user_paths;  // plain vhost-user listeners
    std::string agent_name = "npa-agent";
    uint32_t mtu = 1500;
    uint16_t max_queue_pairs = 16;
    uint64_t features = kDefaultFeatures;       // offered to every guest's back end
    size_t max_sessions = 256;
    size_t max_guests = 256;                    // guests incl. migration reservations
    int housekeeping_ms = 200;                  // link/broken/ready checks
    VfManager* vfs = nullptr;                   // VF pool; null = no VF ops
    uint32_t vf_accept_timeout_ms = 10000;      // default wait for VfAccept
    uint32_t vf_revoke_timeout_ms = 5000;       // default Revoke.timeout_ms
    uint32_t vf_force_grace_ms = 3000;          // forced detach: wait after VFIO REQ
    uint64_t max_guest_memory = 4ull << 30;     // per guest (--max-guest-memory)
    // Per-peer caps, session timeouts, send backlog (session.h, docs/security.md).
    SessionLimits::Options session_limits;
    // Migration (migrations.h). connector null: no TLS configuration, so
    // `npactl migrate` is refused; the destination side is served by
    // whoever calls migrations() as a DestinationHandler (agent_main's
    // MigrationListener).
    PeerConnector migration_connector;
    uint32_t migration_grace_ms = 2000;
    uint32_t migration_hold_ms = 10000;
    uint32_t migration_handshake_timeout_ms = 5000;  // TLS connect + handshake, both sides
    std::vector<uint32_t> rarp_gaps_ms = {50, 100, 200, 400};
    uint64_t migration_offloads = ~0ull;        // NPA_OFFLOAD_* a migrating guest may use
    // Agent restart (docs/security.md "Agent restart"). "" = no roster.
    // Otherwise the agent keeps the file listing its shell guests (name,
    // MAC; guest_registry.h SaveRoster) up to date as they come and go, and
    // leaves it as it is when it stops (SIGTERM) or dies. At Listen() it
    // reads the file a previous agent left: if it names guests, the
    // dataplane holds all traffic (Dataplane::HoldTraffic) until every one
    // of them is RUNNING again or restart_grace_ms have passed, so no frame
    // is switched to a guest that has not reconnected yet. The VFs the
    // file says guests were using are ADOPTED, and tied to their guests
    // again as they resume (vf_attachments.h "After an agent restart").
    std::string restart_roster_path;
    uint32_t restart_grace_ms = 1000;
  };

  // dataplane may be null (no traffic; tests). Both must outlive this.
  ControlServer(Options opts, Dataplane* dataplane, PortFactory factory);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Create the listening sockets. Errors name the path.
  absl::Status Listen();
  // One epoll_wait (at most timeout_ms) and the work it found, plus
  // housekeeping when due. Errors only for failures of the loop itself.
  absl::Status RunOnce(int timeout_ms);
  // Loop until *stop becomes true.
  absl::Status Run(const std::atomic<bool>* stop);
  // Close every session (Bye{reason}) and unlink the sockets.
  void Shutdown(const std::string& reason = "agent shutting down");

  size_t num_guests() const { return guests_.size(); }
  size_t num_sessions() const { return sessions_.size(); }
  // The destination handler for a MigrationListener (its methods may be
  // called from any thread) and the source of MigrationDone (set_send_done).
  Migrations& migrations() { return mig_; }
  // The agent's lifecycle events (agent_events.h): guest_up (RUNNING),
  // guest_down (closed; detail: why), migration_in (a guest that came with a
  // ticket runs), migration_out (the end of an `npactl migrate` this agent
  // served, duration from the request; detail: the outcome), the VF events
  // of VfAttachments and vf_reset (npactl vf reset). Subscribe or
  // AddListener from any thread (e.g. a metrics exporter, before Run).
  AgentEvents& events() { return events_; }
  // The admin socket's path after Listen() ("" if none).
  const std::string& admin_path() const { return admin_path_; }

 private:
  // Both listeners: lfd == admin_listen_fd_ makes an admin-socket session.
  void AcceptControl(int lfd);
  void AcceptVhost(int lfd);
  void OnSessionReadable(int fd);
  // Non-OK: the session must be closed (the Error was sent, or the peer left).
  absl::Status HandleFrame(Session& s, ControlFrame& f);
  absl::Status HandleHello(Session& s, ControlFrame& f);
  // Hello.resume with a ticket: bind the shell to its reserved guest.
  absl::Status HandleResumeHello(Session& s, ControlFrame& f);
  // The back end, the session's role and the Welcome (+fd) and LinkState.
  absl::Status AttachShell(Session& s, Guest& g, uint64_t seq);
  void OfferFreeVf(Guest& g);
  absl::Status HandleGuestFrame(Session& s, Guest& g, ControlFrame& f);
  void OnGuestPortReadable(uint64_t guest_id);
  // Steps the guest along its table as its back end's queues come and go;
  // may close it.
  void UpdateReadiness(Guest& g);
  void CloseBrokenGuests();
  void CloseSession(int fd, const std::string& why);
  void CloseGuest(uint64_t guest_id, const std::string& why, bool broken);
  void Housekeeping();
  bool LinkUp() const;
  ControlChannel* Channel(int fd);
  void AnswerAdmin(const AdminWaiter& w, const absl::Status& st, const std::string& message);
  void Publish(EventKind k, const Guest& g, std::string detail, uint64_t duration_ns = 0);

  Options opts_;
  Dataplane* dp_;
  PortFactory factory_;
  FdLoop loop_;
  SessionLimits limits_;
  std::vector<std::pair<UniqueFd, std::string>> listeners_;  // fd, path to unlink
  std::map<int, Session> sessions_;
  std::string admin_path_;
  int admin_listen_fd_ = -1;
  std::set<int> admin_socket_fds_;  // sessions accepted on the admin socket
  AgentEvents events_;  // before the parts that publish to it
  GuestRegistry guests_;
  VfAttachments vf_;
  Migrations mig_;
  AdminService admin_;
  std::set<uint64_t> want_vf_;  // resumed guests waiting for a free VF
  uint64_t last_housekeeping_ms_ = 0;
  // Agent restart (guest_admission.h): the roster and the traffic gate.
  void SaveRestartRoster();
  void OnGuestRunning(Guest& g);
  RestartGate gate_;
  bool last_link_up_ = true;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_
