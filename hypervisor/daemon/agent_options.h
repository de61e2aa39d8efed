// hypervisor/daemon/agent_options.h — npa-agent's command line and its
// --config file (agent_config.h), parsed and checked before anything starts:
// every range, every pair that goes together, the defaults that depend on
// other settings (the restart roster beside the control socket). The man
// page text is kAgentUsage (--help).
//
//   AgentOptions o;
//   absl::StatusOr<AgentArgs> r = ParseAgentArgs({argv + 1, argv + argc}, &o);
//   if (!r.ok()) {      // "FILE:LINE: " first for a setting from --config
//     fprintf(stderr, "npa-agent: %s\nTry 'npa-agent --help'.\n", r.status().message().data());
//     return 2;
//   }
//   if (*r == AgentArgs::kHelp) fputs(kAgentUsage, stdout);
//
// Errors: InvalidArgument, the message naming the flag, the range or pair it
// needs and the value given. Nothing is opened or started here except the
// --config file, which is read.
// Threads: any; no shared state.
#ifndef NPA_HYPERVISOR_DAEMON_AGENT_OPTIONS_H_
#define NPA_HYPERVISOR_DAEMON_AGENT_OPTIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/log.h"
#include "hypervisor/daemon/control_server.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/migration/migration_channel.h"
#include "hypervisor/vf/vf_manager.h"

namespace npa::agent {

inline constexpr const char* kDefaultControlPath = "/run/npa/agent.sock";

// npa-agent --help.
extern const char kAgentUsage[];

struct AgentOptions {
  ControlServer::Options control;  // control_path is set (kDefaultControlPath unless given)
  Dataplane::Options dataplane;
  VfManager::Options vfs;           // vfs.pool: the --vf entries
  bool control_given = false;       // --control: else /run/npa is created if missing
  std::string tap;                  // --tap NAME; "" = no uplink
  bool tap_persist = false;
  bool require_sealed = false;      // --require-sealed-memory, for --vhost-user back ends
  migration::TlsConfig tls;         // all three files or none
  std::string migration_listen;     // HOST:PORT; "" = none (needs tls)
  std::string metrics_listen;       // ADDR:PORT; "" = no metrics server
  std::optional<LogLevel> log_level;
  std::optional<LogFormat> log_format;

  bool tls_configured() const { return !tls.cert_file.empty(); }
};

enum class AgentArgs { kRun, kHelp, kVersion };

// args: argv without the program name. Settings of a --config FILE come
// first, so a flag on the command line overrides the file.
absl::StatusOr<AgentArgs> ParseAgentArgs(const std::vector<std::string>& argv, AgentOptions* o);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_AGENT_OPTIONS_H_
