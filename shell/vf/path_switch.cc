#include "shell/vf/path_switch.h"

#include "absl/strings/str_cat.h"

namespace npa::shell {

const char* PathSwitchTraits::StateName(PathState s) {
  switch (s) {
    case PathState::kEmulated: return "EMULATED";
    case PathState::kAttaching: return "ATTACHING";
    case PathState::kEntering: return "ENTERING";
    case PathState::kOnVf: return "ON_VF";
    case PathState::kLeaving: return "LEAVING";
    case PathState::kQuiescing: return "QUIESCING";
    case PathState::kDraining: return "DRAINING";
    case PathState::kReturning: return "RETURNING";
    case PathState::kReleasing: return "RELEASING";
    case PathState::kMigrateStopped: return "MIGRATE_STOPPED";
    case PathState::kReconnecting: return "RECONNECTING";
    case PathState::kDetached: return "DETACHED";
  }
  return "?";
}

const char* PathSwitchTraits::EventName(PathEvent e) {
  switch (e) {
    case PathEvent::kOffer: return "offer";
    case PathEvent::kStartOk: return "start ok";
    case PathEvent::kStartFailed: return "start failed";
    case PathEvent::kAcked: return "acked";
    case PathEvent::kAckTimedOut: return "ack timed out";
    case PathEvent::kRevoke: return "revoke";
    case PathEvent::kDeviceReq: return "VFIO REQ";
    case PathEvent::kDeviceErr: return "VFIO ERR";
    case PathEvent::kShellStop: return "shell stop";
    case PathEvent::kQuiesceDone: return "quiesce done";
    case PathEvent::kQuiesceTimedOut: return "quiesce timed out";
    case PathEvent::kReleased: return "released";
    case PathEvent::kAbandon: return "abandon";
    case PathEvent::kMigratePrepare: return "migrate prepare";
    case PathEvent::kMigrateAbort: return "migrate abort";
    case PathEvent::kMigrateCommit: return "migrate commit";
    case PathEvent::kSessionLost: return "session lost";
    case PathEvent::kResumed: return "resumed";
    case PathEvent::kResumeFailed: return "resume failed";
  }
  return "?";
}

absl::Status PathSwitch::Check(PathEvent e) const {
  if (m_.CanFire(e)) return absl::OkStatus();
  return PathSwitchTable::IllegalError(m_.state(), e);
}

absl::Status PathSwitch::Fire(PathEvent e) {
  absl::Status s = m_.Fire(e);
  if (s.ok()) {
    // The acks belonged to the state just left.
    waiting_.reset();
    queues_ = 0;
    expecting_ = false;
  }
  return s;
}

absl::Status PathSwitch::NoAcksExpected() const {
  return absl::FailedPreconditionError(absl::StrCat(PathSwitchTraits::kName,
                                                    ": no acknowledgement is expected in state ",
                                                    m_.name()));
}

absl::Status PathSwitch::ExpectAcks(uint16_t queues, uint64_t deadline_ns) {
  if (!WaitsForAcks(m_.state())) return NoAcksExpected();
  if (queues > kMaxQueues)
    return absl::InvalidArgumentError(absl::StrCat(PathSwitchTraits::kName, ": ", queues,
                                                   " queues, at most ", kMaxQueues));
  if (queues == 0) return Fire(PathEvent::kAcked);
  waiting_.reset();
  for (uint16_t q = 0; q < queues; q++) waiting_.set(q);
  queues_ = queues;
  deadline_ns_ = deadline_ns;
  expecting_ = true;
  return absl::OkStatus();
}

absl::Status PathSwitch::Ack(uint16_t q) {
  if (!expecting_) return NoAcksExpected();
  if (q >= queues_)
    return absl::InvalidArgumentError(absl::StrCat(PathSwitchTraits::kName, ": queue ", q,
                                                   " acked, ", queues_, " were switched"));
  waiting_.reset(q);
  if (waiting_.any()) return absl::OkStatus();
  return Fire(PathEvent::kAcked);
}

absl::Status PathSwitch::Tick(uint64_t now_ns) {
  if (!expecting_) return NoAcksExpected();
  if (now_ns < deadline_ns_) return absl::OkStatus();
  return Fire(PathEvent::kAckTimedOut);
}

}  // namespace npa::shell
