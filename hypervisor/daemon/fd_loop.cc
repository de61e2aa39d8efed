#include "hypervisor/daemon/fd_loop.h"

#include <sys/epoll.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace npa::agent {

absl::Status FdLoop::Open() {
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoError(errno, "epoll_create1 for the control server");
  return absl::OkStatus();
}

void FdLoop::OnReadable(FdKind kind, Handler h) { handlers_[static_cast<size_t>(kind)] = std::move(h); }

absl::Status FdLoop::Watch(int fd, FdKind kind, uint64_t id) {
  if (!epoll_fd_) return absl::FailedPreconditionError("fd loop not open");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
    return ErrnoError(errno, "epoll_ctl add fd ", fd);
  fds_[fd] = Entry{kind, id};
  return absl::OkStatus();
}

void FdLoop::Unwatch(int fd) {
  if (fd < 0 || fds_.erase(fd) == 0) return;
  // The fd is still open (the caller closes it after this), so DEL cannot
  // fail for a reason worth reporting.
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

absl::StatusOr<int> FdLoop::RunOnce(int timeout_ms) {
  if (!epoll_fd_) return absl::FailedPreconditionError("fd loop not open");
  epoll_event evs[32];
  const int n = epoll_wait(epoll_fd_.get(), evs, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return ErrnoError(errno, "epoll_wait in the control server");
  }
  int ran = 0;
  for (int i = 0; i < n; i++) {
    const int fd = evs[i].data.fd;
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;  // unwatched by an earlier event of this batch
    const Entry e = it->second;
    const Handler& h = handlers_[static_cast<size_t>(e.kind)];
    if (!h) continue;
    h(fd, e.id);
    ran++;
  }
  return ran;
}

}  // namespace npa::agent
