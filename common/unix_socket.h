// common/unix_socket.h — UNIX stream sockets with SCM_RIGHTS.
//
//   NPA_ASSIGN_OR_RETURN(UniqueFd s, ConnectUnix("/run/npa/agent.ctl", 5000));
//   iovec iov{buf, len};
//   NPA_RETURN_IF_ERROR(SendWithFds(s.get(), &iov, 1, {memfd}));
//
// Received fds are owned (UniqueFd) from the moment they arrive, so an error
// path never leaks a descriptor the peer sent.
#ifndef NPA_COMMON_UNIX_SOCKET_H_
#define NPA_COMMON_UNIX_SOCKET_H_

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace npa {

// Most fds any single message may carry; more is a protocol error.
inline constexpr size_t kMaxFdsPerMessage = 16;

// Write all of iov (looping over short writes; EINTR retried). fds ride on the
// first sendmsg. The socket may be non-blocking: EAGAIN is waited out with
// poll for at most timeout_ms. MSG_NOSIGNAL: a closed peer is an error, not
// SIGPIPE.
absl::Status SendWithFds(int sock, const iovec* iov, int iovcnt, std::span<const int> fds,
                         int timeout_ms = 5000);

// One non-blocking sendmsg (MSG_DONTWAIT | MSG_NOSIGNAL) of [buf, buf+len)
// with fds attached, never waiting: returns how many bytes the kernel took.
// 0 means the socket buffer is full and nothing was sent, the fds neither;
// any byte taken means the fds went with the first of them. EINTR is retried.
// Errors: the peer is gone (EPIPE, ECONNRESET: kUnavailable is NOT used, so a
// caller can tell "full" from "gone") or another errno, named.
absl::StatusOr<size_t> SendSomeWithFds(int sock, const void* buf, size_t len,
                                       std::span<const int> fds);

// One recvmsg of up to len bytes. Appends the fds that arrived to *fds.
// Returns bytes read; 0 means the peer closed. kUnavailable on EAGAIN.
// Truncated control data (more fds than fit) is kDataLoss: the fds that did
// arrive are closed, nothing is half-accepted.
absl::StatusOr<size_t> RecvWithFds(int sock, void* buf, size_t len, std::vector<UniqueFd>* fds);

// Read exactly len bytes (blocking with a total timeout), collecting fds.
absl::Status RecvExact(int sock, void* buf, size_t len, std::vector<UniqueFd>* fds,
                       int timeout_ms);

// Connect to a UNIX stream socket at path, retrying ENOENT/ECONNREFUSED until
// timeout_ms passes (a server that is still starting). CLOEXEC.
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms);

// Bind and listen at path (a stale socket file is replaced). CLOEXEC,
// non-blocking, mode 0660.
absl::StatusOr<UniqueFd> ListenUnix(const std::string& path, int backlog = 64);

// Wait until fd is readable (POLLIN) for at most timeout_ms. kDeadlineExceeded
// on timeout.
absl::Status WaitReadable(int fd, int timeout_ms);

}  // namespace npa

#endif  // NPA_COMMON_UNIX_SOCKET_H_
