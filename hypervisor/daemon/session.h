// hypervisor/daemon/session.h — one connection on npa-agent's control socket
// (include/npa/control.proto) and the two ways the agent ends one: the
// Error it sends, and the protocol code a codec failure maps to.
//
// A session is undecided until its first frame: Hello makes it a guest
// session (it then belongs to one Guest, guest_registry.h), AdminRequest an
// npactl session (admin_service.h). ControlServer owns every Session and its
// channel; a Guest or a parked npactl request refers to it by fd, never by
// pointer, so a closed session is simply not found.
//
//   SendError(*s.ch, control::Error::UNEXPECTED, "first message must be ...", seq);
//   // logged as "control: session fd N: rejected (UNEXPECTED): ..." and sent;
//   // the caller closes the session next.
//
// Threads: the control thread only.
#ifndef NPA_HYPERVISOR_DAEMON_SESSION_H_
#define NPA_HYPERVISOR_DAEMON_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/control_codec.h"

namespace npa::agent {

enum class SessionRole : uint8_t { kUndecided, kGuest, kAdmin };

struct Session {
  std::unique_ptr<ControlChannel> ch;
  SessionRole role = SessionRole::kUndecided;
  uint64_t guest_id = 0;  // kGuest
};

// Error{code, msg} with `seq`, logged with the session's fd. Best effort: the
// session closes next, so a failed send changes nothing.
void SendError(ControlChannel& ch, control::Error::Code code, const std::string& msg,
               uint64_t seq = 0);

// Codec failures map onto the protocol's error codes by what they are about:
// a major version is VERSION, an fd count FD_MISMATCH, the rest MALFORMED.
control::Error::Code CodeForCodecError(const absl::Status& s);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_SESSION_H_
