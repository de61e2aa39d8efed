#include "hypervisor/daemon/session.h"

#include "common/log.h"

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
  if (s.message().find("fds") != absl::string_view::npos) return Error::FD_MISMATCH;
  return Error::MALFORMED;
}

}  // namespace npa::agent
