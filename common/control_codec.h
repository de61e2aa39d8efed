// common/control_codec.h — framing and validation for npa/control.proto.
//
//   ControlChannel ch(std::move(sock));
//   control::Envelope hello;
//   hello.mutable_hello()->set_name("guest0");
//   NPA_RETURN_IF_ERROR(ch.Send(hello));
//   NPA_ASSIGN_OR_RETURN(ControlFrame reply, ch.ReceiveBlocking(5000));
//
// Event-loop use: call ch.OnReadable() when the socket is readable, then
// ch.Pop() until it yields no frame. Every error names what was wrong; after
// an error the channel is unusable and the caller closes the session.
//
// Two ways to send:
//   - blocking (the default; the shell's control thread, npactl, tests):
//     Send writes the whole frame, waiting out a full socket for at most 5 s.
//   - queued (the agent's control thread, EnableSendQueue): Send never
//     waits. What the kernel does not take is kept in a backlog, each frame's
//     fds (dup'ed) with it, and flushed by OnWritable when the socket is
//     writable again; `want_write(true)` is called when the backlog appears,
//     `want_write(false)` when it drains, so the event loop polls EPOLLOUT
//     only while there is something to flush. A peer that lets the backlog
//     pass its bound (bytes, frames or fds) is cut off: the backlog is
//     dropped, a Warn line names the peer and the figures, the socket is
//     shut down (so its reader wakes up), and from then on Send, OnWritable
//     and OnReadable return that kResourceExhausted status, so the owner
//     closes the session on its next read of it.
//
//   ch.EnableSendQueue({.max_bytes = 256 << 10}, [&](bool on) { loop.WantWritable(fd, on); },
//                      "pid 42 uid 0");
//   ch.Send(reply);            // returns at once; OK even if only queued
//   ...on EPOLLOUT: ch.OnWritable();
#ifndef NPA_COMMON_CONTROL_CODEC_H_
#define NPA_COMMON_CONTROL_CODEC_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "include/npa/control.pb.h"

namespace npa {

inline constexpr uint32_t kControlMajor = 1;
// Minor 1: migration (Migrate*, Migration*, Hello.resume) and AdminRequest.migrate.
inline constexpr uint32_t kControlMinor = 1;
inline constexpr size_t kMaxControlFrame = 65536;

// Bounds of a queued channel's backlog (what the peer has not read yet).
struct SendQueueLimits {
  size_t max_bytes = 256 * 1024;  // four largest frames
  size_t max_frames = 64;
  size_t max_fds = 64;            // dup'ed fds waiting with their frames
};

struct ControlFrame {
  control::Envelope env;
  std::vector<UniqueFd> fds;  // exactly env.fd_count() of them
};

// Decode and check one frame body (the bytes after the length prefix): it
// parses, its major matches, a body is set. Pure: no I/O, fuzzable.
absl::StatusOr<control::Envelope> DecodeEnvelope(const uint8_t* data, size_t len);

// Length prefix + serialized env (major/minor filled in by the caller).
std::string EncodeFrame(const control::Envelope& env);

// Name of the body case, for logs ("hello", "admin_request", ...).
const char* BodyName(const control::Envelope& env);

class ControlChannel {
 public:
  explicit ControlChannel(UniqueFd sock) : sock_(std::move(sock)) {}

  int fd() const { return sock_.get(); }

  // Stamp version, seq (if 0) and fd_count, then send with fds attached.
  // Blocking mode: the whole frame or an error. Queued mode: OK once the
  // kernel or the backlog holds it (the caller's fds may be closed at once);
  // kResourceExhausted when the backlog bound cut the peer off.
  absl::Status Send(control::Envelope env, std::span<const int> fds = {});

  // Switch Send to queued mode (see the file comment). `want_write` may be
  // empty (a caller that polls backlog_bytes() itself); `peer` names the
  // peer in the cut-off log line. Call once, before the first Send.
  void EnableSendQueue(SendQueueLimits limits, std::function<void(bool)> want_write,
                       std::string peer = "");
  // Flush the backlog as far as the socket takes it. Non-OK: the peer is gone
  // or was cut off (the channel is failed; close the session).
  absl::Status OnWritable();
  bool queued() const { return queued_; }
  size_t backlog_bytes() const { return backlog_bytes_; }
  size_t backlog_frames() const { return backlog_.size(); }
  size_t backlog_fds() const { return backlog_fds_; }
  // OK, or why the channel can no longer send (cut off, peer gone).
  const absl::Status& failed() const { return failed_; }

  // Read what the socket has (non-blocking or after poll). kAborted when the
  // peer closed; other errors are protocol violations.
  absl::Status OnReadable();
  // The next complete frame, if any, with its fds.
  absl::StatusOr<std::optional<ControlFrame>> Pop();
  // A complete frame (or a length prefix Pop will refuse) is buffered: Pop
  // has something to say without another read. A reader that stops popping
  // on a budget calls Pop again, not OnReadable, while this holds.
  bool HasFrame() const;

  // Wait up to timeout_ms for one frame.
  absl::StatusOr<ControlFrame> ReceiveBlocking(int timeout_ms);

 private:
  struct Queued {
    std::string bytes;           // the frame, length prefix included
    size_t off = 0;              // bytes already taken by the kernel
    std::vector<UniqueFd> fds;   // dups; sent with the first byte, then closed
  };
  absl::Status Fail(absl::Status why);
  absl::Status Enqueue(std::string frame, size_t off, std::span<const int> fds);
  void SetWantWrite(bool on);

  UniqueFd sock_;
  bool queued_ = false;
  SendQueueLimits limits_;
  std::function<void(bool)> want_write_;
  bool want_write_on_ = false;
  std::string peer_;
  std::deque<Queued> backlog_;
  size_t backlog_bytes_ = 0;
  size_t backlog_fds_ = 0;
  absl::Status failed_;
  // Received bytes; [rd_, size) not yet popped. Popping moves rd_ (no copy
  // per frame); the consumed prefix is dropped before the next read.
  std::string buf_;
  size_t rd_ = 0;
  std::deque<UniqueFd> fds_;
  uint64_t next_seq_ = 1;
};

}  // namespace npa

#endif  // NPA_COMMON_CONTROL_CODEC_H_
