// hypervisor/daemon/agent_config.h — npa-agent's configuration file
// (--config FILE; the packaged unit uses /etc/npa/agent.conf): the same
// settings as the flags, one per line, so an operator keeps them in a file
// and a flag given on the command line still overrides it.
//
//   # /etc/npa/agent.conf
//   control /run/npa/agent.sock
//   tap = npa0                # "key value" or "key = value"
//   vf 0000:00:05.0,reset=flr # list flags repeat, as on the command line
//   require-sealed-memory     # a switch: the key alone
//
// A key is a flag's name without "--"; the value is the rest of the line
// (surrounding spaces trimmed; "#" starts a comment only at the start of a
// line or after a space, so values may contain '#'). Keys are checked by the
// agent's own flag parser, which names the file and line of a bad one.
//
// Bounds: at most kMaxConfigBytes and kMaxConfigLines; errors name the file
// and the line (kInvalidArgument), or the system error (kNotFound, ...).
#ifndef NPA_HYPERVISOR_DAEMON_AGENT_CONFIG_H_
#define NPA_HYPERVISOR_DAEMON_AGENT_CONFIG_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace npa::agent {

inline constexpr size_t kMaxConfigBytes = 64 * 1024;
inline constexpr size_t kMaxConfigLines = 2048;

// One flag from the file: "--key" and, if the line had one, its value.
struct ConfigArg {
  std::vector<std::string> argv;  // {"--key"} or {"--key", "value"}
  std::string origin;             // "FILE:LINE", for error messages
};

absl::StatusOr<std::vector<ConfigArg>> ParseAgentConfig(const std::string& text,
                                                        const std::string& file);
absl::StatusOr<std::vector<ConfigArg>> ReadAgentConfig(const std::string& path);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_AGENT_CONFIG_H_
