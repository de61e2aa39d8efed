#include "common/control_codec.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>

#include <cstring>

#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"
#include "common/wire_check.h"

namespace npa {

absl::StatusOr<control::Envelope> DecodeEnvelope(const uint8_t* data, size_t len) {
  if (len == 0 || len > kMaxControlFrame)
    return absl::InvalidArgumentError(absl::StrCat("control frame length ", len,
                                                   " outside 1..", kMaxControlFrame));
  // Bounded first: a length past its parent's end would make the parser
  // reserve up to 50 MB (wire_check.h).
  if (absl::Status s = CheckWireLengths(data, len, "npa.control.Envelope"); !s.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("control frame of ", len, " bytes is not a valid Envelope: ", s.message()));
  control::Envelope env;
  if (!env.ParseFromArray(data, static_cast<int>(len)))
    return absl::InvalidArgumentError(
        absl::StrCat("control frame of ", len, " bytes is not a valid Envelope"));
  if (env.major() != kControlMajor)
    return absl::FailedPreconditionError(
        absl::StrCat("control protocol major ", env.major(), " is not supported (this side speaks ",
                     kControlMajor, ".", kControlMinor, ")"));
  if (env.body_case() == control::Envelope::BODY_NOT_SET)
    return absl::InvalidArgumentError("control frame has no body (unknown message type?)");
  if (env.fd_count() > kMaxFdsPerMessage)
    return absl::InvalidArgumentError(absl::StrCat("control frame claims ", env.fd_count(),
                                                   " fds; at most ", kMaxFdsPerMessage));
  return env;
}

std::string EncodeFrame(const control::Envelope& env) {
  std::string body = env.SerializeAsString();
  uint32_t n = static_cast<uint32_t>(body.size());
  std::string out(4, '\0');
  // Little-endian length prefix (x86 and the spec in control.proto agree).
  memcpy(out.data(), &n, 4);
  out += body;
  return out;
}

const char* BodyName(const control::Envelope& env) {
  switch (env.body_case()) {
    case control::Envelope::kHello: return "hello";
    case control::Envelope::kWelcome: return "welcome";
    case control::Envelope::kError: return "error";
    case control::Envelope::kLink: return "link";
    case control::Envelope::kBye: return "bye";
    case control::Envelope::kStatsRequest: return "stats_request";
    case control::Envelope::kStatsReply: return "stats_reply";
    case control::Envelope::kRegions: return "regions";
    case control::Envelope::kVfOffer: return "vf_offer";
    case control::Envelope::kVfAccept: return "vf_accept";
    case control::Envelope::kRevoke: return "revoke";
    case control::Envelope::kRevokeDone: return "revoke_done";
    case control::Envelope::kMigratePrepare: return "migrate_prepare";
    case control::Envelope::kMigrateReady: return "migrate_ready";
    case control::Envelope::kMigrateAbort: return "migrate_abort";
    case control::Envelope::kMigrateCommit: return "migrate_commit";
    case control::Envelope::kRssConfig: return "rss_config";
    case control::Envelope::kMigrationOffer: return "migration_offer";
    case control::Envelope::kMigrationAccept: return "migration_accept";
    case control::Envelope::kMigrationCommit: return "migration_commit";
    case control::Envelope::kMigrationCommitted: return "migration_committed";
    case control::Envelope::kMigrationLateFrames: return "migration_late_frames";
    case control::Envelope::kMigrationDone: return "migration_done";
    case control::Envelope::kAdminRequest: return "admin_request";
    case control::Envelope::kAdminReply: return "admin_reply";
    case control::Envelope::BODY_NOT_SET: return "none";
  }
  return "unknown";
}

absl::Status ControlChannel::Send(control::Envelope env, std::span<const int> fds) {
  if (!failed_.ok()) return failed_;
  env.set_major(kControlMajor);
  env.set_minor(kControlMinor);
  if (env.seq() == 0) env.set_seq(next_seq_++);
  env.set_fd_count(static_cast<uint32_t>(fds.size()));
  std::string frame = EncodeFrame(env);
  if (frame.size() - 4 > kMaxControlFrame)
    return absl::InvalidArgumentError(absl::StrCat("control message ", BodyName(env), " is ",
                                                   frame.size() - 4, " bytes; limit ",
                                                   kMaxControlFrame));
  if (!queued_) {
    iovec iov{frame.data(), frame.size()};
    return SendWithFds(sock_.get(), &iov, 1, fds);
  }
  if (fds.size() > kMaxFdsPerMessage)
    return absl::InvalidArgumentError(absl::StrCat("control message ", BodyName(env), " has ",
                                                   fds.size(), " fds; at most ", kMaxFdsPerMessage));
  size_t off = 0;
  if (backlog_.empty()) {
    // Nothing ahead of it: the kernel may take it all now, the common case.
    auto n = SendSomeWithFds(sock_.get(), frame.data(), frame.size(), fds);
    if (!n.ok()) return Fail(n.status());
    if (*n == frame.size()) return absl::OkStatus();
    off = *n;
  }
  return Enqueue(std::move(frame), off, off > 0 ? std::span<const int>() : fds);
}

void ControlChannel::EnableSendQueue(SendQueueLimits limits, std::function<void(bool)> want_write,
                                     std::string peer) {
  queued_ = true;
  limits_ = limits;
  want_write_ = std::move(want_write);
  peer_ = peer.empty() ? absl::StrCat("fd ", sock_.get()) : std::move(peer);
}

void ControlChannel::SetWantWrite(bool on) {
  if (on == want_write_on_) return;
  want_write_on_ = on;
  if (want_write_) want_write_(on);
}

absl::Status ControlChannel::Enqueue(std::string frame, size_t off, std::span<const int> fds) {
  Queued q;
  q.off = off;
  for (int fd : fds) {
    // The caller may close its fds as soon as Send returns: keep our own.
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) return Fail(ErrnoError(errno, "dup of an fd queued for ", peer_));
    q.fds.emplace_back(d);
  }
  q.bytes = std::move(frame);
  backlog_bytes_ += q.bytes.size() - q.off;
  backlog_fds_ += q.fds.size();
  backlog_.push_back(std::move(q));
  if (backlog_bytes_ > limits_.max_bytes || backlog_.size() > limits_.max_frames ||
      backlog_fds_ > limits_.max_fds) {
    return Fail(absl::ResourceExhaustedError(absl::StrCat(
        "control peer ", peer_, " does not read: ", backlog_bytes_, " bytes in ", backlog_.size(),
        " frames (", backlog_fds_, " fds) unsent, bound ", limits_.max_bytes, " bytes / ",
        limits_.max_frames, " frames / ", limits_.max_fds, " fds; cut off")));
  }
  SetWantWrite(true);
  return absl::OkStatus();
}

absl::Status ControlChannel::OnWritable() {
  if (!failed_.ok()) return failed_;
  while (!backlog_.empty()) {
    Queued& q = backlog_.front();
    std::vector<int> fds;
    for (const auto& f : q.fds) fds.push_back(f.get());
    auto n = SendSomeWithFds(sock_.get(), q.bytes.data() + q.off, q.bytes.size() - q.off, fds);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;  // full again: wait for the next EPOLLOUT
    backlog_fds_ -= q.fds.size();
    q.fds.clear();  // they went with the first byte taken
    q.off += *n;
    backlog_bytes_ -= *n;
    if (q.off == q.bytes.size()) backlog_.pop_front();
  }
  SetWantWrite(!backlog_.empty());
  return absl::OkStatus();
}

absl::Status ControlChannel::Fail(absl::Status why) {
  if (!failed_.ok()) return failed_;
  if (absl::IsResourceExhausted(why)) {
    NPA_LOG(Warn, "control: %s", std::string(why.message()).c_str());
    failed_ = why;
  } else {
    // EPIPE, ECONNRESET, ...: to the owner the same as a peer that closed.
    failed_ = absl::AbortedError(absl::StrCat("control peer ", peer_, " gone: ", why.message()));
  }
  backlog_.clear();  // closes the dup'ed fds
  backlog_bytes_ = backlog_fds_ = 0;
  SetWantWrite(false);
  // Wakes the owner's read of this socket (EOF), where OnReadable reports
  // `why`, and tells the peer it is done.
  if (sock_) ::shutdown(sock_.get(), SHUT_RDWR);
  return failed_;
}

absl::Status ControlChannel::OnReadable() {
  if (!failed_.ok()) return failed_;
  char tmp[16384];
  std::vector<UniqueFd> fds;
  auto n = RecvWithFds(sock_.get(), tmp, sizeof tmp, &fds);
  if (!n.ok()) return absl::IsUnavailable(n.status()) ? absl::OkStatus() : n.status();
  for (auto& f : fds) fds_.push_back(std::move(f));
  if (fds_.size() > 4 * kMaxFdsPerMessage)
    return absl::InvalidArgumentError("peer sent fds without frames that claim them");
  if (*n == 0) return absl::AbortedError("peer closed the control connection");
  if (rd_ != 0) {
    buf_.erase(0, rd_);
    rd_ = 0;
  }
  if (buf_.size() + *n > 2 * (kMaxControlFrame + 4))
    return absl::ResourceExhaustedError("peer sent more than two frames without reading replies");
  buf_.append(tmp, *n);
  return absl::OkStatus();
}

bool ControlChannel::HasFrame() const {
  const size_t have = buf_.size() - rd_;
  if (have < 4) return false;
  uint32_t len;
  memcpy(&len, buf_.data() + rd_, 4);
  return len == 0 || len > kMaxControlFrame || have >= 4 + static_cast<size_t>(len);
}

absl::StatusOr<std::optional<ControlFrame>> ControlChannel::Pop() {
  const size_t have = buf_.size() - rd_;
  if (have < 4) return std::optional<ControlFrame>();
  uint32_t len;
  memcpy(&len, buf_.data() + rd_, 4);
  if (len == 0 || len > kMaxControlFrame)
    return absl::InvalidArgumentError(
        absl::StrCat("control frame length ", len, " outside 1..", kMaxControlFrame));
  if (have < 4 + static_cast<size_t>(len)) return std::optional<ControlFrame>();
  NPA_ASSIGN_OR_RETURN(control::Envelope env,
                       DecodeEnvelope(reinterpret_cast<const uint8_t*>(buf_.data()) + rd_ + 4, len));
  rd_ += 4 + len;
  if (rd_ == buf_.size()) {
    buf_.clear();
    rd_ = 0;
  }
  if (fds_.size() < env.fd_count())
    return absl::InvalidArgumentError(absl::StrCat("control message ", BodyName(env), " claims ",
                                                   env.fd_count(), " fds but ", fds_.size(),
                                                   " arrived"));
  ControlFrame f;
  f.env = std::move(env);
  for (uint32_t i = 0; i < f.env.fd_count(); i++) {
    f.fds.push_back(std::move(fds_.front()));
    fds_.pop_front();
  }
  // fds travel with the first byte of their frame, so once every buffered
  // frame is consumed, a leftover fd belongs to no frame.
  if (buf_.empty() && !fds_.empty())
    return absl::InvalidArgumentError(absl::StrCat("control message ", BodyName(f.env),
                                                   " arrived with ", fds_.size(),
                                                   " fds more than it claims"));
  return std::optional<ControlFrame>(std::move(f));
}

absl::StatusOr<ControlFrame> ControlChannel::ReceiveBlocking(int timeout_ms) {
  const uint64_t t0 = MonotonicMs();
  for (;;) {
    NPA_ASSIGN_OR_RETURN(std::optional<ControlFrame> f, Pop());
    if (f) return std::move(*f);
    const int elapsed = static_cast<int>(MonotonicMs() - t0);
    if (elapsed >= timeout_ms) return absl::DeadlineExceededError("no control reply in time");
    NPA_RETURN_IF_ERROR(WaitReadable(sock_.get(), timeout_ms - elapsed));
    NPA_RETURN_IF_ERROR(OnReadable());
  }
}

}  // namespace npa
