// hypervisor/npactl/npactl_format.h — npactl's output: a human table or one JSON
// object, from an AdminReply. Pure functions, unit-tested.
//
//   std::string out = json ? FormatJson(reply, NpactlCommand::kGuests)
//                          : FormatTable(reply, NpactlCommand::kGuests);
//
// JSON shape (stable, for scripts):
//   guests: {"agent": NAME, "guests": [{"id", "name", "mac", "state", "path",
//            "transport", "queue_pairs", "vhost_ready", "pid"}, ...]}
//   stats:  as guests, each guest with "queues": [{"queue", "rx_packets",
//           "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes",
//           "tx_dropped"}, ...]
//   agent:  {"agent", "uptime_ms", "guests": N, "switch": {"unicast",
//           "flooded"}, "uplink": null | {"name", "rx_packets", ...}}
//   migrate: {"agent", "guest", "to", "state", "message", "total_us",
//           "phases": [{"name", "duration_us", "detail"}, ...]}
//           (FormatMigrateJson; also on failure, with "error")
//   error:  {"error": {"code", "message"}} (FormatErrorJson)
#ifndef NPA_HYPERVISOR_NPACTL_NPACTL_FORMAT_H_
#define NPA_HYPERVISOR_NPACTL_NPACTL_FORMAT_H_

#include <string>

#include <nlohmann/json.hpp>

#include "include/npa/control.pb.h"

namespace npa::agent {

enum class NpactlCommand { kGuests, kStats, kAgent };

// The JSON is built with nlohmann::json (Debian's nlohmann-json3-dev), keys
// in the order documented above; no hand-written encoder.
using Json = nlohmann::ordered_json;

// j on one line plus '\n'. Strings are emitted as UTF-8; bytes that are not
// valid UTF-8 (a guest chooses its own name) become U+FFFD.
std::string DumpJson(const Json& j);

// {"error": {"code": "BUSY", "message": ...}}, for a reply with an error.
std::string FormatErrorJson(const control::AdminReply& r);

std::string FormatJson(const control::AdminReply& r, NpactlCommand cmd);
std::string FormatTable(const control::AdminReply& r, NpactlCommand cmd);

// npactl migrate: the per-phase table (PHASE MS DETAIL), the source
// migration's last state and the agent's message; error set or not.
// FormatMigrateTable(r) is the header, every phase of r, then the tail; npactl
// prints the header, then each phase as its progress reply comes, then the
// final reply's phases it has not printed yet and the tail.
std::string FormatMigrateTable(const control::AdminReply& r);
std::string FormatMigrateHeader();
std::string FormatMigratePhase(const control::MigrationPhase& p);
std::string FormatMigrateTail(const control::AdminReply& r);  // total, state, message/error
std::string FormatMigrateJson(const control::AdminReply& r, const std::string& guest,
                              const std::string& to);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_NPACTL_NPACTL_FORMAT_H_
