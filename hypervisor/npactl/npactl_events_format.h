// hypervisor/npactl/npactl_events_format.h — how `npactl events` prints the
// agent's lifecycle events (include/npa/control.proto AgentEvent; the agent
// side is hypervisor/daemon/agent_events.h).
//
//   for (const auto& e : reply.events()) fputs(FormatEventJson(e).c_str(), stdout);
//   if (reply.events_missed()) fputs(FormatMissedJson(reply.events_missed()).c_str(), stdout);
//
// --json: one object per line (JSON lines), stable keys, always present:
//   {"seq":12,"time_unix_ms":1764990000123,"mono_ns":81234567890,
//    "kind":"revoke_done","guest":"g1","guest_id":3,"vf":"0000:03:00.1",
//    "duration_us":5120,"detail":"revoke_done"}
//   "guest" and "vf" are "" and guest_id 0 when the event concerns none.
//   A reader that fell behind gets, before the next events, the line
//   {"kind":"missed","count":N}.
// Text: one line per event,
//   SEQ  TIME(UTC, ms)  KIND  guest=NAME  vf=PCI  took=MS ms  DETAIL
// with the empty fields left out; "(N events missed)" for a gap.
// Strings the agent sends are not trusted: nlohmann::json escapes them and
// turns invalid UTF-8 into U+FFFD; the text form replaces control bytes.
#ifndef NPA_HYPERVISOR_NPACTL_NPACTL_EVENTS_FORMAT_H_
#define NPA_HYPERVISOR_NPACTL_NPACTL_EVENTS_FORMAT_H_

#include <cstdint>
#include <string>

#include "include/npa/control.pb.h"

namespace npa::agent {

std::string FormatEventJson(const control::AgentEvent& e);
std::string FormatMissedJson(uint64_t count);
std::string FormatEventText(const control::AgentEvent& e);
std::string FormatMissedText(uint64_t count);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_NPACTL_NPACTL_EVENTS_FORMAT_H_
