#include "hypervisor/daemon/fd_loop.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace npa::agent {

absl::Status FdLoop::Open() {
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoError(errno, "epoll_create1 for the control server");
  return absl::OkStatus();
}

void FdLoop::OnReadable(FdKind kind, Handler h) { handlers_[static_cast<size_t>(kind)] = std::move(h); }
void FdLoop::OnWritable(FdKind kind, Handler h) { writable_[static_cast<size_t>(kind)] = std::move(h); }
void FdLoop::OnDeadline(FdKind kind, Handler h) { expired_[static_cast<size_t>(kind)] = std::move(h); }

absl::Status FdLoop::WantWritable(int fd, bool on) {
  auto it = fds_.find(fd);
  if (it == fds_.end())
    return absl::NotFoundError(absl::StrCat("write interest for fd ", fd, ": not watched"));
  if (it->second.out == on) return absl::OkStatus();
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev) < 0)
    return ErrnoError(errno, "epoll_ctl mod fd ", fd, on ? " +EPOLLOUT" : " -EPOLLOUT");
  it->second.out = on;
  return absl::OkStatus();
}

bool FdLoop::wants_writable(int fd) const {
  auto it = fds_.find(fd);
  return it != fds_.end() && it->second.out;
}

absl::Status FdLoop::SetDeadline(int fd, uint64_t at_ms) {
  auto it = fds_.find(fd);
  if (it == fds_.end())
    return absl::NotFoundError(absl::StrCat("deadline for fd ", fd, ": not watched"));
  if (it->second.deadline_ms != 0) deadlines_.erase({it->second.deadline_ms, fd});
  it->second.deadline_ms = std::max<uint64_t>(at_ms, 1);
  deadlines_.insert({it->second.deadline_ms, fd});
  return absl::OkStatus();
}

void FdLoop::ClearDeadline(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end() || it->second.deadline_ms == 0) return;
  deadlines_.erase({it->second.deadline_ms, fd});
  it->second.deadline_ms = 0;
}

uint64_t FdLoop::deadline(int fd) const {
  auto it = fds_.find(fd);
  return it == fds_.end() ? 0 : it->second.deadline_ms;
}

void FdLoop::RunDeadlines(int* ran) {
  const uint64_t now = MonotonicMs();
  // Collected first: a handler may arm new deadlines (even past ones), which
  // wait for the next turn instead of looping here.
  std::vector<int> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
    due.push_back(it->second);
  for (int fd : due) {
    auto it = fds_.find(fd);
    if (it == fds_.end() || it->second.deadline_ms == 0 || it->second.deadline_ms > now)
      continue;  // unwatched or moved by an earlier handler of this turn
    deadlines_.erase({it->second.deadline_ms, fd});
    it->second.deadline_ms = 0;
    const Entry e = it->second;
    const Handler& h = expired_[static_cast<size_t>(e.kind)];
    if (!h) continue;
    h(fd, e.id);
    (*ran)++;
  }
}

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
  auto it = fds_.find(fd);
  if (fd < 0 || it == fds_.end()) return;
  if (it->second.deadline_ms != 0) deadlines_.erase({it->second.deadline_ms, fd});
  fds_.erase(it);
  pending_.erase(fd);
  // The fd is still open (the caller closes it after this), so DEL cannot
  // fail for a reason worth reporting.
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

absl::Status FdLoop::MarkPending(int fd) {
  if (fds_.count(fd) == 0)
    return absl::FailedPreconditionError(absl::StrCat("fd ", fd, " is not watched: nothing to mark pending"));
  pending_.insert(fd);
  return absl::OkStatus();
}

absl::StatusOr<int> FdLoop::RunOnce(int timeout_ms) {
  if (!epoll_fd_) return absl::FailedPreconditionError("fd loop not open");
  // This round's pending fds; a handler that marks its fd again puts it in
  // the next round.
  std::set<int> due;
  due.swap(pending_);
  if (!due.empty()) timeout_ms = 0;
  if (!deadlines_.empty()) {
    const uint64_t now = MonotonicMs();
    const uint64_t next = deadlines_.begin()->first;
    const int until = next <= now ? 0 : static_cast<int>(std::min<uint64_t>(next - now, 1u << 30));
    if (timeout_ms < 0 || until < timeout_ms) timeout_ms = until;
  }
  epoll_event evs[32];
  const int n = epoll_wait(epoll_fd_.get(), evs, 32, timeout_ms);
  if (n < 0 && errno != EINTR) return ErrnoError(errno, "epoll_wait in the control server");
  int ran = 0;
  for (int i = 0; i < n; i++) {
    const int fd = evs[i].data.fd;
    const uint32_t what = evs[i].events;
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;  // unwatched by an earlier event of this batch
    const Entry e = it->second;
    // Anything but a bare EPOLLOUT (data, EOF, HUP, ERR) is the reader's.
    if ((what & ~static_cast<uint32_t>(EPOLLOUT)) != 0 || !e.out) {
      due.erase(fd);  // its one turn this round
      if (const Handler& h = handlers_[static_cast<size_t>(e.kind)]) {
        h(fd, e.id);
        ran++;
      }
    }
    if ((what & EPOLLOUT) == 0) continue;
    it = fds_.find(fd);  // the reader may have unwatched it or dropped interest
    if (it == fds_.end() || !it->second.out) continue;
    if (const Handler& h = writable_[static_cast<size_t>(e.kind)]) {
      h(fd, e.id);
      ran++;
    }
  }
  for (int fd : due) {
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;  // unwatched by a handler of this round
    if (const Handler& h = handlers_[static_cast<size_t>(it->second.kind)]) {
      h(fd, it->second.id);
      ran++;
    }
  }
  RunDeadlines(&ran);
  return ran;
}

}  // namespace npa::agent
