#include "hypervisor/daemon/session.h"

#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {

using control::Error;

void SendError(ControlChannel& ch, Error::Code code, const std::string& msg, uint64_t seq) {
  NPA_LOG(Warn, "control: session fd %d: rejected (%s): %s", ch.fd(), Error::Code_Name(code).c_str(),
          msg.c_str());
  control::Envelope env;
  env.set_seq(seq);
  env.mutable_error()->set_code(code);
  env.mutable_error()->set_message(msg);
  if (absl::Status s = ch.Send(env); !s.ok())
    NPA_LOG(Debug, "control: session fd %d: error not delivered: %s", ch.fd(),
            std::string(s.message()).c_str());
}

Error::Code CodeForCodecError(const absl::Status& s) {
  if (absl::IsFailedPrecondition(s)) return Error::VERSION;
  if (absl::IsResourceExhausted(s)) return Error::LIMIT;
  if (s.message().find("fds") != absl::string_view::npos) return Error::FD_MISMATCH;
  return Error::MALFORMED;
}

absl::Status RefuseUnexpectedFds(ControlChannel& ch, ControlFrame& f) {
  if (f.fds.empty() || f.env.has_regions()) return absl::OkStatus();
  const size_t n = f.fds.size();
  f.fds.clear();  // closed now, not when the session goes
  std::string msg = absl::StrCat(BodyName(f.env), " carries ", n, " fds; it takes none");
  SendError(ch, Error::FD_MISMATCH, msg, f.env.seq());
  return absl::InvalidArgumentError(msg);
}

absl::StatusOr<PeerCred> PeerCredOf(int fd) {
  ucred uc{};
  socklen_t len = sizeof uc;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
    return ErrnoError(errno, "SO_PEERCRED of fd ", fd);
  return PeerCred{uc.pid, uc.uid, uc.gid};
}

absl::Status SessionLimits::Admit(int fd, ControlChannel* ch) {
  NPA_ASSIGN_OR_RETURN(PeerCred c, PeerCredOf(fd));
  const size_t by_pid = sessions_of_pid(c.pid), by_uid = sessions_of_uid(c.uid);
  if (by_pid >= opts_.max_per_pid)
    return absl::ResourceExhaustedError(
        absl::StrCat("pid ", c.pid, " (uid ", c.uid, ") already has ", by_pid,
                     " control sessions (limit ", opts_.max_per_pid, " per process)"));
  if (by_uid >= opts_.max_per_uid)
    return absl::ResourceExhaustedError(
        absl::StrCat("uid ", c.uid, " already has ", by_uid, " control sessions (limit ",
                     opts_.max_per_uid, " per user)"));
  recs_[fd] = Rec{c, SessionRole::kUndecided, false};
  per_pid_[c.pid]++;
  per_uid_[c.uid]++;
  Arm(fd, opts_.undecided_timeout_ms);
  if (ch) {
    FdLoop* loop = loop_;
    ch->EnableSendQueue(
        opts_.send_queue,
        [loop, fd](bool on) {
          // Only a bug makes this fail (fd not watched); the backlog bound
          // still cuts a non-reading peer off, so log and go on.
          if (absl::Status s = loop->WantWritable(fd, on); !s.ok())
            NPA_LOG(Error, "control: session fd %d: %s", fd, std::string(s.message()).c_str());
        },
        absl::StrCat("fd ", fd, " pid ", c.pid, " uid ", c.uid));
  }
  return absl::OkStatus();
}

void SessionLimits::Arm(int fd, uint32_t ms) {
  if (!loop_) return;
  if (ms == 0) {
    loop_->ClearDeadline(fd);
    return;
  }
  if (absl::Status s = loop_->SetDeadline(fd, MonotonicMs() + ms); !s.ok())
    NPA_LOG(Error, "control: session fd %d: no timeout armed: %s", fd,
            std::string(s.message()).c_str());
}

void SessionLimits::OnFrame(int fd, SessionRole role) {
  auto it = recs_.find(fd);
  if (it == recs_.end()) return;
  Rec& r = it->second;
  const SessionRole was = r.role;
  r.role = role;
  if (role == SessionRole::kGuest && was != SessionRole::kGuest && !r.ready)
    Arm(fd, opts_.negotiate_timeout_ms);
  else if (role == SessionRole::kAdmin)
    Arm(fd, opts_.admin_idle_timeout_ms);
}

void SessionLimits::Ready(int fd) {
  auto it = recs_.find(fd);
  if (it == recs_.end() || it->second.ready) return;
  it->second.ready = true;
  if (loop_) loop_->ClearDeadline(fd);
}

void SessionLimits::Unready(int fd) {
  auto it = recs_.find(fd);
  if (it == recs_.end() || !it->second.ready) return;
  it->second.ready = false;
  Arm(fd, opts_.negotiate_timeout_ms);
}

void SessionLimits::Release(int fd) {
  auto it = recs_.find(fd);
  if (it == recs_.end()) return;
  const PeerCred c = it->second.cred;
  recs_.erase(it);
  if (--per_pid_[c.pid] == 0) per_pid_.erase(c.pid);
  if (--per_uid_[c.uid] == 0) per_uid_.erase(c.uid);
  if (loop_) loop_->ClearDeadline(fd);
}

std::string SessionLimits::PeerLabel(int fd) const {
  auto it = recs_.find(fd);
  if (it == recs_.end()) return absl::StrCat("fd ", fd);
  return absl::StrCat("pid ", it->second.cred.pid, " uid ", it->second.cred.uid);
}

std::string SessionLimits::TimeoutReason(int fd) const {
  auto it = recs_.find(fd);
  const std::string who = PeerLabel(fd);
  const SessionRole role = it == recs_.end() ? SessionRole::kUndecided : it->second.role;
  switch (role) {
    case SessionRole::kUndecided:
      return absl::StrCat("session from ", who, " sent no hello or admin_request within ",
                          opts_.undecided_timeout_ms, " ms");
    case SessionRole::kGuest:
      return absl::StrCat("guest session from ", who, ": vhost-user back end not ready within ",
                          opts_.negotiate_timeout_ms, " ms of hello");
    case SessionRole::kAdmin:
      return absl::StrCat("npactl session from ", who, " idle for ", opts_.admin_idle_timeout_ms,
                          " ms");
  }
  return "session timed out";
}

size_t SessionLimits::sessions_of_pid(pid_t pid) const {
  auto it = per_pid_.find(pid);
  return it == per_pid_.end() ? 0 : it->second;
}

size_t SessionLimits::sessions_of_uid(uid_t uid) const {
  auto it = per_uid_.find(uid);
  return it == per_uid_.end() ? 0 : it->second;
}

}  // namespace npa::agent
