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
  absl::Status Watch(int fd, FdKind kind, uint64_t id = 0);
  // Stops watching fd (no-op for -1 or an fd not watched).
  void Unwatch(int fd);
  bool watching(int fd) const { return fds_.count(fd) != 0; }
  size_t size() const { return fds_.size(); }

  // One epoll_wait of at most timeout_ms (-1: no limit) and the handlers of
  // the fds it found readable. Returns how many handlers ran.
  absl::StatusOr<int> RunOnce(int timeout_ms);

 private:
  struct Entry {
    FdKind kind;
    uint64_t id;
  };
  UniqueFd epoll_fd_;
  std::map<int, Entry> fds_;
  std::array<Handler, kNumFdKinds> handlers_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_FD_LOOP_H_
