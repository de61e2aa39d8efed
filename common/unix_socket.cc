#include "common/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/status_macros.h"

namespace npa {
namespace {

int64_t NowMs() { return static_cast<int64_t>(MonotonicMs()); }

absl::StatusOr<sockaddr_un> MakeAddr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return absl::InvalidArgumentError(
        absl::StrCat("socket path '", path, "' is empty or longer than ", sizeof a.sun_path - 1));
  memcpy(a.sun_path, path.data(), path.size());
  return a;
}

}  // namespace

absl::Status WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return absl::OkStatus();
    if (r == 0) return absl::DeadlineExceededError("timed out waiting for data");
    if (errno != EINTR) return ErrnoError(errno, "poll");
  }
}

absl::Status SendWithFds(int sock, const iovec* iov_in, int iovcnt, std::span<const int> fds,
                         int timeout_ms) {
  if (fds.size() > kMaxFdsPerMessage)
    return absl::InvalidArgumentError(absl::StrCat("too many fds: ", fds.size()));
  iovec iov[8];
  if (iovcnt < 1 || iovcnt > 8) return absl::InvalidArgumentError("iovcnt out of range");
  memcpy(iov, iov_in, sizeof(iovec) * iovcnt);
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  bool fds_pending = !fds.empty();
  int first = 0;
  const int64_t deadline = NowMs() + timeout_ms;
  while (first < iovcnt) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = iovcnt - first;
    if (fds_pending) {
      memset(cbuf, 0, sizeof cbuf);
      msg.msg_control = cbuf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{sock, POLLOUT, 0};
        int left = static_cast<int>(deadline - NowMs());
        if (left <= 0) return absl::DeadlineExceededError("send timed out: peer not reading");
        ::poll(&p, 1, left);
        continue;
      }
      return ErrnoError(errno, "sendmsg");
    }
    fds_pending = false;  // the kernel attached them to the first byte sent
    size_t left = static_cast<size_t>(n);
    while (first < iovcnt && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < iovcnt) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SendSomeWithFds(int sock, const void* buf, size_t len,
                                       std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage)
    return absl::InvalidArgumentError(absl::StrCat("too many fds: ", fds.size()));
  iovec iov{const_cast<void*>(buf), len};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    memset(cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return ErrnoError(errno, "sendmsg");
  }
}

absl::StatusOr<size_t> RecvWithFds(int sock, void* buf, size_t len, std::vector<UniqueFd>* fds) {
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::UnavailableError("no data yet");
    return ErrnoError(errno, "recvmsg");
  }
  std::vector<UniqueFd> got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < nfd; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      got.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC)
    return absl::DataLossError(absl::StrCat("peer sent more than ", kMaxFdsPerMessage,
                                            " fds in one message; all of them were closed"));
  for (auto& f : got) fds->push_back(std::move(f));
  return static_cast<size_t>(n);
}

absl::Status RecvExact(int sock, void* buf, size_t len, std::vector<UniqueFd>* fds,
                       int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  size_t got = 0;
  while (got < len) {
    int left = static_cast<int>(deadline - NowMs());
    if (left <= 0) return absl::DeadlineExceededError("timed out reading from peer");
    NPA_RETURN_IF_ERROR(WaitReadable(sock, left));
    auto n = RecvWithFds(sock, static_cast<char*>(buf) + got, len - got, fds);
    if (!n.ok()) {
      if (absl::IsUnavailable(n.status())) continue;
      return n.status();
    }
    if (*n == 0) return absl::AbortedError("peer closed the connection");
    got += *n;
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms) {
  NPA_ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddr(path));
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return ErrnoError(errno, "socket(AF_UNIX)");
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return s;
    int e = errno;
    if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || NowMs() >= deadline)
      return ErrnoError(e, "connect to ", path);
    usleep(20000);
  }
}

absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, int backlog) {
  NPA_ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddr(path));
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return ErrnoError(errno, "socket(AF_UNIX)");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return absl::AlreadyExistsError(absl::StrCat(path, " exists and is not a socket"));
    ::unlink(path.c_str());
  }
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    return ErrnoError(errno, "bind ", path);
  ::chmod(path.c_str(), 0660);
  if (::listen(s.get(), backlog) < 0) return ErrnoError(errno, "listen ", path);
  return s;
}

}  // namespace npa
