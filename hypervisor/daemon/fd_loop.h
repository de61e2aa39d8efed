// hypervisor/daemon/fd_loop.h — the control thread's readiness loop: one
// epoll set, each watched fd tagged with its kind (and an id), and one
// handler per kind. ControlServer registers its listeners, sessions and
// guests' vhost-user back ends here and does its work in the handlers.
//
//   FdLoop loop;
//   NPA_RETURN_IF_ERROR(loop.Open());
//   loop.OnReadable(FdKind::kSession, [&](int fd, uint64_t) { ReadSession(fd); });
//   NPA_RETURN_IF_ERROR(loop.Watch(conn_fd, FdKind::kSession));
//   NPA_ASSIGN_OR_RETURN(int n, loop.RunOnce(200));   // n fds dispatched
//   loop.Unwatch(conn_fd);                            // before closing it
//
// Level-triggered (EPOLLIN): a handler that leaves data unread is called
// again on the next RunOnce. A handler may Unwatch any fd, its own or another
// in the same batch: an fd no longer watched when its turn comes is skipped,
// so a session closed by an earlier event is never read after its close
// (even if its number was reused since, as long as the new fd is not yet
// watched).
//
// Write interest: WantWritable(fd, true) adds EPOLLOUT for fd until
// WantWritable(fd, false); while on, the kind's OnWritable handler runs when
// the fd is writable (after its readable handler, if both are ready, and only
// if the fd is still watched). ControlChannel's queued mode turns it on while
// its backlog is not empty (common/control_codec.h).
//
// Deadlines: SetDeadline(fd, at_ms) arms one deadline per watched fd on
// common/clock.h's MonotonicMs (a second call moves it; ClearDeadline or
// Unwatch drops it). RunOnce never sleeps past the nearest deadline, and
// after the ready fds it runs the kind's OnDeadline handler for every fd
// whose deadline has passed (each once: the deadline is cleared before its
// handler, which may arm a new one). ControlServer uses it for session
// timeouts (session.h SessionLimits).
//
//   loop.OnWritable(FdKind::kSession, [&](int fd, uint64_t) { Flush(fd); });
//   loop.OnDeadline(FdKind::kSession, [&](int fd, uint64_t) { TimeOut(fd); });
//   loop.SetDeadline(conn_fd, MonotonicMs() + 5000);
//
// Pending: a readable handler that stops on a work budget with input still
// buffered in user space (which epoll cannot see) calls MarkPending(fd). The
// next RunOnce then does not sleep, and runs fd's readable handler once
// more after the fds epoll found ready (once per RunOnce, even if epoll also
// reported fd). So each peer gets at most one budget per round and the
// others' turns come in between: ControlServer bounds the frames of one
// session per wake-up this way.
//
//   if (frames_this_wake == kBudget && ch.HasFrame()) loop.MarkPending(fd);
//
// Ownership: the loop owns only its epoll fd. Watched fds belong to the
// caller, who must Unwatch an fd before closing it. Threads: one thread
// (the control thread) calls everything; handlers run on it.
// Errors: Open/RunOnce fail only for the loop itself (epoll_create1,
// epoll_wait other than EINTR); Watch fails naming the fd (e.g. EBADF, or
// EEXIST for an fd already watched).
#ifndef NPA_HYPERVISOR_DAEMON_FD_LOOP_H_
#define NPA_HYPERVISOR_DAEMON_FD_LOOP_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace npa::agent {

enum class FdKind : uint8_t {
  kControlListener,  // the control socket: accept a session
  kVhostListener,    // a plain vhost-user socket: accept a guest
  kSession,          // a control session (shell or npactl): read frames
  kGuestPort,        // a guest's vhost-user back end (id: the guest id)
};
inline constexpr size_t kNumFdKinds = 4;

class FdLoop {
 public:
  using Handler = std::function<void(int fd, uint64_t id)>;

  FdLoop() = default;
  FdLoop(const FdLoop&) = delete;
  FdLoop& operator=(const FdLoop&) = delete;

  absl::Status Open();
  bool is_open() const { return epoll_fd_.valid(); }
  // The handler for every fd of `kind` (replaces an earlier one).
  void OnReadable(FdKind kind, Handler h);
  void OnWritable(FdKind kind, Handler h);
  void OnDeadline(FdKind kind, Handler h);
  absl::Status Watch(int fd, FdKind kind, uint64_t id = 0);
  // Stops watching fd (no-op for -1 or an fd not watched); drops its
  // deadline and write interest.
  void Unwatch(int fd);
  bool watching(int fd) const { return fds_.count(fd) != 0; }
  size_t size() const { return fds_.size(); }

  // EPOLLOUT on or off for a watched fd (no-op if unchanged). Errors name the
  // fd (not watched, epoll_ctl).
  absl::Status WantWritable(int fd, bool on);
  bool wants_writable(int fd) const;
  // Arm (or move) fd's deadline to at_ms (MonotonicMs). Errors: not watched.
  absl::Status SetDeadline(int fd, uint64_t at_ms);
  void ClearDeadline(int fd);
  // fd's deadline, 0 if none.
  uint64_t deadline(int fd) const;
  size_t num_deadlines() const { return deadlines_.size(); }
  // Run fd's readable handler again in the next RunOnce (see "Pending").
  // Errors: not watched. Unwatch drops it.
  absl::Status MarkPending(int fd);
  bool pending(int fd) const { return pending_.count(fd) != 0; }

  // One epoll_wait of at most timeout_ms (-1: no limit), shortened to the
  // nearest deadline, then the handlers of the fds it found ready and those
  // of the deadlines passed. Returns how many handlers ran.
  absl::StatusOr<int> RunOnce(int timeout_ms);

 private:
  struct Entry {
    FdKind kind;
    uint64_t id;
    bool out = false;          // EPOLLOUT registered
    uint64_t deadline_ms = 0;  // 0: none
  };
  void RunDeadlines(int* ran);

  UniqueFd epoll_fd_;
  std::map<int, Entry> fds_;
  std::set<std::pair<uint64_t, int>> deadlines_;  // (at_ms, fd), nearest first
  std::set<int> pending_;                          // MarkPending since the last round
  std::array<Handler, kNumFdKinds> handlers_;
  std::array<Handler, kNumFdKinds> writable_;
  std::array<Handler, kNumFdKinds> expired_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_FD_LOOP_H_
