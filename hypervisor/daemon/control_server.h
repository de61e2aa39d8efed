// hypervisor/daemon/control_server.h — npa-agent's control thread: the control
// socket (guest shells and npactl), plain vhost-user listeners, session
// lifecycles, link-state events. One epoll loop, one thread.
//
//   ControlServer::Options o;
//   o.control_path = "/run/npa/agent.ctl";
//   o.vhost_user_paths = {"/run/npa/vhost0.sock"};
//   ControlServer srv(o, &dataplane, VhostPortFactory());
//   NPA_RETURN_IF_ERROR(srv.Listen());
//   while (!stop) NPA_RETURN_IF_ERROR(srv.RunOnce(100));   // or Run(&stop)
//   srv.Shutdown();   // Bye to every guest, sockets unlinked
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
// Guest lifecycle (guest_lifecycle.h): CONNECTED on accept, NEGOTIATING once
// its back end exists, READY when queue pair 0 is ready, RUNNING once the
// dataplane polls it, back to NEGOTIATING if every queue stops; BROKEN when
// the back end reports a violation; CLOSING/CLOSED on teardown.
//
// VF path (control_server_vf.cc, docs/vf-management.md; needs Options::vfs):
//   shell -> RegionAnnounce{regions} + 1 memfd per region: checked and mapped
//            (guest_regions.h); bad => Error{MALFORMED} and the session closes.
//            Re-announcing while a VF is held is UNEXPECTED.
//   npactl vf attach G PCI (guest RUNNING, no VF, regions announced):
//     agent -> VfOffer{ids, offer_id} + 1 fd (dup of the VFIO device fd);
//              guest RUNNING -> VF_OFFERED
//     shell -> VfAccept{offer_id, accepted, plugin, reason} within
//              vf_accept_timeout_ms: accepted => VF_ACTIVE (path "vf");
//              declined => teardown, RUNNING (the shell closes its fd first);
//              no answer => teardown with a forced unbind, RUNNING.
//   npactl vf detach G: agent -> Revoke{offer_id, timeout_ms, reason},
//     guest REVOKING; shell -> RevokeDone{offer_id, tx_inflight_lost} =>
//     reset, unmap, close, VF FREE, guest RUNNING. No RevokeDone in time =>
//     the same teardown plus a forced unbind (the kernel REQs the shell).
//   npactl vf detach --force G (VF_ACTIVE): the agent fires the device's
//     VFIO REQ interrupt (the signal the kernel sends on unbind), guest
//     REVOKING; a cooperating shell falls back by itself on the still-working
//     device and says RevokeDone unsolicited => teardown + forced unbind.
//     No RevokeDone within vf_force_grace_ms (or the request's timeout), or
//     no REQ eventfd wired, or the guest was not VF_ACTIVE => teardown +
//     forced unbind at once (what the VF still held is lost, uncounted).
//   RevokeDone while VF_ACTIVE with nothing asked (the shell fell back on
//     VFIO ERR, or stopped its queues): teardown, guest RUNNING.
//   A VfAccept/RevokeDone naming an offer the agent already gave up (timeout,
//   force) is ignored; naming any other offer is UNEXPECTED.
//   A guest session that closes releases its VF (forced).
#ifndef NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_
#define NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/control_codec.h"
#include "common/unique_fd.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_lifecycle.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/vf/guest_regions.h"
#include "hypervisor/daemon/mac_switch.h"
#include "hypervisor/vf/vf_manager.h"

namespace npa::agent {

// Hello checks, pure (also used by tests): "" if acceptable, else the problem.
std::string CheckGuestName(const std::string& name);

class ControlServer {
 public:
  struct Options {
    std::string control_path;                   // "" = no control socket
    std::vector<std::string> vhost_user_paths;  // plain vhost-user listeners
    std::string agent_name = "npa-agent";
    uint32_t mtu = 1500;
    uint16_t max_queue_pairs = 16;
    uint64_t features = kDefaultFeatures;       // offered to every guest's back end
    size_t max_sessions = 256;
    int housekeeping_ms = 200;                  // link/broken/ready checks
    VfManager* vfs = nullptr;                   // VF pool; null = no VF ops
    uint32_t vf_accept_timeout_ms = 10000;      // default wait for VfAccept
    uint32_t vf_revoke_timeout_ms = 5000;       // default Revoke.timeout_ms
    uint32_t vf_force_grace_ms = 3000;          // forced detach: wait after VFIO REQ
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

 private:
  struct Guest {
    uint64_t id = 0;
    std::string name;
    std::optional<MacAddr> mac;
    uint32_t pid = 0;
    uint16_t queue_pairs = 0;
    std::string transport;     // "control" | "vhost-user-socket"
    GuestLifecycle lc;
    int session_fd = -1;       // control session, or -1
    std::shared_ptr<GuestPort> port;
    bool in_dataplane = false;
    std::unique_ptr<GuestRegions> regions;  // RegionAnnounce, for DMA mapping
    uint64_t offer_id = 0;                  // VF held (offered/active/revoking)
    std::string vf_bdf;
    std::string vf_plugin;
    std::vector<uint64_t> stale_offers;     // given up: late answers are ignored
  };
  // An npactl request waiting for the guest (VfAccept or RevokeDone).
  struct PendingVf {
    enum Kind { kAttach, kRevoke } kind;
    uint64_t guest_id = 0;
    uint64_t offer_id = 0;
    uint64_t deadline_ms = 0;
    int admin_fd = -1;   // -1: nobody waits for the answer
    uint64_t admin_seq = 0;
    bool forced = false;     // kRevoke by VFIO REQ (npactl vf detach --force)
    uint64_t start_ms = 0;
  };
  enum class Role { kUndecided, kGuest, kAdmin };
  struct Session {
    std::unique_ptr<ControlChannel> ch;
    Role role = Role::kUndecided;
    uint64_t guest_id = 0;
  };
  enum class FdKind { kControlListener, kVhostListener, kSession, kGuestPort };
  struct FdEntry {
    FdKind kind;
    uint64_t id;  // guest id for kGuestPort
  };

  void Watch(int fd, FdKind kind, uint64_t id);
  void Unwatch(int fd);
  void AcceptControl(int lfd);
  void AcceptVhost(int lfd);
  void OnSessionReadable(int fd);
  // Non-OK: the session must be closed (the Error was sent, or the peer left).
  absl::Status HandleFrame(Session& s, ControlFrame& f);
  absl::Status HandleHello(Session& s, ControlFrame& f);
  absl::Status HandleAdmin(Session& s, const ControlFrame& f);
  void OnGuestPortReadable(uint64_t guest_id);
  void CloseSession(int fd, const std::string& why);
  void CloseGuest(uint64_t guest_id, const std::string& why, bool broken);
  void SendError(Session& s, control::Error::Code code, const std::string& msg, uint64_t seq = 0);
  void Housekeeping();
  void UpdateReadiness(Guest& g);
  std::optional<MacAddr> AssignMac();
  bool MacInUse(const MacAddr& m) const;
  bool LinkUp() const;
  void FillGuestInfo(const Guest& g, bool with_queues, control::GuestInfo* out) const;
  uint64_t NowMs() const;

  // control_server_vf.cc
  absl::Status HandleRegions(Session& s, Guest& g, ControlFrame& f);
  absl::Status HandleVfAccept(Session& s, Guest& g, const control::Envelope& env);
  absl::Status HandleRevokeDone(Session& s, Guest& g, const control::Envelope& env);
  // Admin ops; each either answers now or parks a PendingVf.
  absl::Status AdminVf(Session& s, const control::Envelope& req);
  Guest* FindGuest(const std::string& name_or_id);
  // Starts an attach; on an immediate failure returns it (nothing pending).
  absl::Status StartVfAttach(Guest& g, const std::string& pci, uint32_t timeout_ms, int admin_fd,
                             uint64_t admin_seq);
  absl::Status StartVfDetach(Guest& g, bool force, uint32_t timeout_ms, int admin_fd,
                             uint64_t admin_seq, std::string* done_message);
  // Tear down the guest's VF and walk the guest back to RUNNING (or leave it
  // to the caller when closing).
  absl::Status ReleaseGuestVf(Guest& g, const std::string& why, bool force);
  void CheckVfDeadlines();
  void AnswerPending(const PendingVf& p, const absl::Status& st, const std::string& message);
  void FailPendingOfGuest(uint64_t guest_id, const std::string& why);
  void FillVfInfo(const VfView& v, control::VfInfo* out) const;

  Options opts_;
  Dataplane* dp_;
  PortFactory factory_;
  UniqueFd epoll_fd_;
  std::vector<std::pair<UniqueFd, std::string>> listeners_;  // fd, path to unlink
  std::map<int, FdEntry> fds_;
  std::map<int, Session> sessions_;
  std::map<uint64_t, Guest> guests_;
  uint64_t next_guest_id_ = 1;
  uint64_t start_ms_ = 0;
  uint64_t last_housekeeping_ms_ = 0;
  bool last_link_up_ = true;
  uint32_t mac_salt_ = 0;
  std::vector<PendingVf> pending_vf_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_CONTROL_SERVER_H_
