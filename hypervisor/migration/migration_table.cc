#include "hypervisor/migration/migration_table.h"

namespace npa::migration {

const char* SourceStateName(SourceState s) {
  switch (s) {
    case SourceState::kRunning: return "RUNNING";
    case SourceState::kRevokingVf: return "REVOKING_VF";
    case SourceState::kOffered: return "OFFERED";
    case SourceState::kStopping: return "STOPPING";
    case SourceState::kStopCopy: return "STOP_COPY";
    case SourceState::kCommitted: return "COMMITTED";
    case SourceState::kDone: return "DONE";
    case SourceState::kError: return "ERROR";
  }
  return "?";
}

const char* SourceEventName(SourceEvent e) {
  switch (e) {
    case SourceEvent::kRevoke: return "revoke";
    case SourceEvent::kOffer: return "offer";
    case SourceEvent::kAccepted: return "accepted";
    case SourceEvent::kReady: return "ready";
    case SourceEvent::kCommitted: return "committed";
    case SourceEvent::kDone: return "done";
    case SourceEvent::kAbort: return "abort";
    case SourceEvent::kFail: return "fail";
    case SourceEvent::kShellReturned: return "shell_returned";
    case SourceEvent::kHoldExpired: return "hold_expired";
  }
  return "?";
}

const char* DestStateName(DestState s) {
  switch (s) {
    case DestState::kReserved: return "RESERVED";
    case DestState::kResuming: return "RESUMING";
    case DestState::kRunning: return "RUNNING";
    case DestState::kReleased: return "RELEASED";
    case DestState::kError: return "ERROR";
  }
  return "?";
}

const char* DestEventName(DestEvent e) {
  switch (e) {
    case DestEvent::kCommit: return "commit";
    case DestEvent::kResumed: return "resumed";
    case DestEvent::kHoldExpired: return "hold_expired";
    case DestEvent::kChannelLost: return "channel_lost";
    case DestEvent::kFail: return "fail";
    case DestEvent::kRelease: return "release";
  }
  return "?";
}

}  // namespace npa::migration
