#include "hypervisor/npactl/npactl_events_format.h"

#include <time.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hypervisor/npactl/npactl_format.h"

namespace npa::agent {
namespace {

// The agent's words on a terminal: no control bytes (escape sequences).
std::string Printable(const std::string& s) {
  std::string out = s.substr(0, 200);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace

std::string FormatEventJson(const control::AgentEvent& e) {
  return DumpJson({{"seq", e.seq()},
                   {"time_unix_ms", e.unix_ms()},
                   {"mono_ns", e.mono_ns()},
                   {"kind", e.kind()},
                   {"guest", e.guest()},
                   {"guest_id", e.guest_id()},
                   {"vf", e.vf()},
                   {"duration_us", e.duration_us()},
                   {"detail", e.detail()}});
}

std::string FormatMissedJson(uint64_t count) {
  return DumpJson({{"kind", "missed"}, {"count", count}});
}

std::string FormatEventText(const control::AgentEvent& e) {
  const time_t secs = static_cast<time_t>(e.unix_ms() / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line = absl::StrFormat("%6u  %s.%03uZ  %-13s", e.seq(), when, e.unix_ms() % 1000,
                                     Printable(e.kind()));
  if (!e.guest().empty()) absl::StrAppend(&line, "  guest=", Printable(e.guest()));
  if (!e.vf().empty()) absl::StrAppend(&line, "  vf=", Printable(e.vf()));
  if (e.duration_us())
    absl::StrAppend(&line, absl::StrFormat("  took=%.3f ms", e.duration_us() / 1000.0));
  if (!e.detail().empty()) absl::StrAppend(&line, "  ", Printable(e.detail()));
  return line + "\n";
}

std::string FormatMissedText(uint64_t count) {
  return absl::StrCat("(", count, " events missed: this reader fell behind)\n");
}

}  // namespace npa::agent
