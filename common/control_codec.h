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
#ifndef NPA_COMMON_CONTROL_CODEC_H_
#define NPA_COMMON_CONTROL_CODEC_H_

#include <cstdint>
#include <deque>
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
  absl::Status Send(control::Envelope env, std::span<const int> fds = {});

  // Read what the socket has (non-blocking or after poll). kAborted when the
  // peer closed; other errors are protocol violations.
  absl::Status OnReadable();
  // The next complete frame, if any, with its fds.
  absl::StatusOr<std::optional<ControlFrame>> Pop();

  // Wait up to timeout_ms for one frame.
  absl::StatusOr<ControlFrame> ReceiveBlocking(int timeout_ms);

 private:
  UniqueFd sock_;
  std::string buf_;
  std::deque<UniqueFd> fds_;
  uint64_t next_seq_ = 1;
};

}  // namespace npa

#endif  // NPA_COMMON_CONTROL_CODEC_H_
