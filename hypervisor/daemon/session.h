// hypervisor/daemon/session.h — one connection on npa-agent's control socket
// (include/npa/control.proto), the bounds every such connection lives under
// (SessionLimits), and the two ways the agent ends one: the Error it sends,
// and the protocol code a codec failure maps to.
//
// A session is undecided until its first frame: Hello makes it a guest
// session (it then belongs to one Guest, guest_registry.h), AdminRequest an
// npactl session (admin_service.h). ControlServer owns every Session and its
// channel; a Guest or a parked npactl request refers to it by fd, never by
// pointer, so a closed session is simply not found.
//
//   SendError(*s.ch, control::Error::UNEXPECTED, "first message must be ...", seq);
//   // logged as "control: session fd N: rejected (UNEXPECTED): ..." and sent;
//   // the caller closes the session next.
//
// SessionLimits (docs/security.md has every bound with its default and flag):
//   - connections per peer: at most max_per_pid sessions from one process
//     and max_per_uid from one user (SO_PEERCRED at accept); over the cap the
//     connection gets Error{LIMIT, "pid P already has N sessions (limit N)"}
//     and is closed before it is read;
//   - timeouts, on FdLoop deadlines: an undecided session (no first frame)
//     after undecided_timeout_ms; a guest session whose vhost-user back end
//     never became ready after negotiate_timeout_ms from its Hello; an npactl
//     session idle (no request) for admin_idle_timeout_ms. The deadline's
//     handler sends Error{LIMIT, TimeoutReason(fd)} and closes the session;
//   - the send backlog: each admitted channel sends in queued mode
//     (common/control_codec.h), so no write to a peer waits; a peer whose
//     backlog passes send_queue is cut off.
//
//   SessionLimits limits(opts, &loop);
//   // accept:   Watch(fd) then  if (!limits.Admit(fd, ch).ok()) { SendError(LIMIT); close }
//   // frame OK: limits.OnFrame(fd, s.role);
//   // READY:    limits.Ready(fd);
//   // deadline: SendError(*ch, LIMIT, limits.TimeoutReason(fd)); close
//   // close:    limits.Release(fd) before Unwatch
//
// Threads: the control thread only. Ownership: the FdLoop outlives the
// SessionLimits; channels are the caller's (SessionLimits keeps no pointer
// to one: the write-interest hook it installs captures the loop and the fd).
#ifndef NPA_HYPERVISOR_DAEMON_SESSION_H_
#define NPA_HYPERVISOR_DAEMON_SESSION_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/control_codec.h"
#include "hypervisor/daemon/fd_loop.h"

namespace npa::agent {

enum class SessionRole : uint8_t { kUndecided, kGuest, kAdmin };

struct Session {
  std::unique_ptr<ControlChannel> ch;
  SessionRole role = SessionRole::kUndecided;
  uint64_t guest_id = 0;  // kGuest
};

// Error{code, msg} with `seq`, logged with the session's fd. Best effort: the
// session closes next, so a failed send changes nothing.
void SendError(ControlChannel& ch, control::Error::Code code, const std::string& msg,
               uint64_t seq = 0);

// Codec failures map onto the protocol's error codes by what they are about:
// a major version is VERSION, an fd count FD_MISMATCH, a bound (backlog,
// unread frames) LIMIT, the rest MALFORMED.
control::Error::Code CodeForCodecError(const absl::Status& s);

// Frames a shell may send with fds: region_announce only. Any other frame
// that carries fds has them closed at once, gets Error{FD_MISMATCH, "<body>
// carries N fds; it takes none"}, and the result is non-OK (close the
// session). OK: nothing to say.
absl::Status RefuseUnexpectedFds(ControlChannel& ch, ControlFrame& f);

struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
// SO_PEERCRED of a connected UNIX socket (the peer's at connect time).
absl::StatusOr<PeerCred> PeerCredOf(int fd);

class SessionLimits {
 public:
  struct Options {
    size_t max_per_pid = 16;                 // sessions from one process
    size_t max_per_uid = 128;                // sessions from one user
    uint32_t undecided_timeout_ms = 5000;    // accept -> first frame
    uint32_t negotiate_timeout_ms = 30000;   // Hello -> vhost-user ready (READY)
    uint32_t admin_idle_timeout_ms = 60000;  // between npactl requests
    SendQueueLimits send_queue;              // what a peer may leave unread
  };

  SessionLimits(Options opts, FdLoop* loop) : opts_(opts), loop_(loop) {}
  SessionLimits(const SessionLimits&) = delete;
  SessionLimits& operator=(const SessionLimits&) = delete;

  const Options& options() const { return opts_; }

  // A connection accepted on fd, already watched in the loop: reads the
  // peer's credentials, checks the caps, arms the undecided deadline and,
  // if ch is given, switches it to queued sends (EPOLLOUT through the loop).
  // Non-OK: refuse it (kResourceExhausted naming the pid or uid and the cap;
  // Error{LIMIT}); nothing was recorded, nothing armed.
  absl::Status Admit(int fd, ControlChannel* ch);
  // After every frame the session handled OK, with its role after it: the
  // first one that makes it a guest arms the negotiation deadline; an
  // npactl session's idle deadline is re-armed; an undecided one keeps its.
  void OnFrame(int fd, SessionRole role);
  // The session's guest reached READY: no deadline any more.
  void Ready(int fd);
  // The session's guest went back to negotiating (every queue stopped):
  // the negotiation deadline is armed again, from now, so a guest cannot
  // park itself half-negotiated by reaching READY once. No-op unless Ready.
  void Unready(int fd);
  // The session closed (call before FdLoop::Unwatch; unknown fd: no-op).
  void Release(int fd);

  // Why fd's deadline ended it, naming the peer and the bound.
  std::string TimeoutReason(int fd) const;
  // "pid P uid U" for logs ("fd N" if unknown).
  std::string PeerLabel(int fd) const;
  size_t sessions_of_pid(pid_t pid) const;
  size_t sessions_of_uid(uid_t uid) const;
  size_t size() const { return recs_.size(); }

 private:
  struct Rec {
    PeerCred cred;
    SessionRole role = SessionRole::kUndecided;
    bool ready = false;
  };
  void Arm(int fd, uint32_t ms);

  Options opts_;
  FdLoop* loop_;
  std::map<int, Rec> recs_;
  std::map<pid_t, size_t> per_pid_;
  std::map<uid_t, size_t> per_uid_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_SESSION_H_
