#include "hypervisor/npactl/npactl_format.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace npa::agent {
namespace {

void GuestJson(const control::GuestInfo& g, bool with_queues, std::string* o) {
  absl::StrAppend(o, "{\"id\":", g.id(), ",\"name\":", JsonString(g.name()),
                  ",\"mac\":", JsonString(g.mac()), ",\"state\":", JsonString(g.state()),
                  ",\"path\":", JsonString(g.path()), ",\"transport\":", JsonString(g.transport()),
                  ",\"queue_pairs\":", g.queue_pairs(),
                  ",\"vhost_ready\":", g.vhost_ready() ? "true" : "false", ",\"pid\":", g.pid());
  if (with_queues) {
    absl::StrAppend(o, ",\"queues\":[");
    for (int i = 0; i < g.queues_size(); i++) {
      const auto& q = g.queues(i);
      absl::StrAppend(o, i ? "," : "", "{\"queue\":", q.queue(), ",\"rx_packets\":", q.rx_packets(),
                      ",\"rx_bytes\":", q.rx_bytes(), ",\"rx_dropped\":", q.rx_dropped(),
                      ",\"tx_packets\":", q.tx_packets(), ",\"tx_bytes\":", q.tx_bytes(),
                      ",\"tx_dropped\":", q.tx_dropped(), "}");
    }
    absl::StrAppend(o, "]");
  }
  absl::StrAppend(o, "}");
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        // Bytes >= 0x80 are escaped one by one: the agent's strings are not
        // guaranteed UTF-8, and the output must stay valid JSON regardless.
        if (c < 0x20 || c >= 0x7f) o += absl::StrFormat("\\u%04x", c);
        else o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

std::string FormatJson(const control::AdminReply& r, NpactlCommand cmd) {
  std::string o = absl::StrCat("{\"agent\":", JsonString(r.agent_name()));
  if (cmd == NpactlCommand::kAgent) {
    absl::StrAppend(&o, ",\"uptime_ms\":", r.uptime_ms(), ",\"guests\":", r.guests_size(),
                    ",\"switch\":{\"unicast\":", r.switch_unicast(),
                    ",\"flooded\":", r.switch_flooded(), "},\"uplink\":");
    if (r.has_uplink()) {
      const auto& u = r.uplink();
      absl::StrAppend(&o, "{\"name\":", JsonString(u.name()), ",\"rx_packets\":", u.rx_packets(),
                      ",\"rx_bytes\":", u.rx_bytes(), ",\"rx_dropped\":", u.rx_dropped(),
                      ",\"tx_packets\":", u.tx_packets(), ",\"tx_bytes\":", u.tx_bytes(),
                      ",\"tx_dropped\":", u.tx_dropped(), "}");
    } else {
      absl::StrAppend(&o, "null");
    }
  } else {
    absl::StrAppend(&o, ",\"guests\":[");
    for (int i = 0; i < r.guests_size(); i++) {
      if (i) o += ",";
      GuestJson(r.guests(i), cmd == NpactlCommand::kStats, &o);
    }
    absl::StrAppend(&o, "]");
  }
  return o + "}\n";
}

std::string FormatTable(const control::AdminReply& r, NpactlCommand cmd) {
  std::string o;
  switch (cmd) {
    case NpactlCommand::kGuests:
      o = absl::StrFormat("%-5s %-20s %-17s %-12s %-8s %-17s %3s %5s %7s\n", "ID", "NAME", "MAC",
                          "STATE", "PATH", "TRANSPORT", "QP", "READY", "PID");
      for (const auto& g : r.guests())
        absl::StrAppend(&o, absl::StrFormat("%-5d %-20s %-17s %-12s %-8s %-17s %3d %5s %7d\n",
                                            g.id(), g.name(), g.mac().empty() ? "-" : g.mac(),
                                            g.state(), g.path(), g.transport(), g.queue_pairs(),
                                            g.vhost_ready() ? "yes" : "no", g.pid()));
      if (r.guests_size() == 0) o += "(no guests)\n";
      break;
    case NpactlCommand::kStats:
      for (const auto& g : r.guests()) {
        absl::StrAppend(&o, absl::StrFormat("guest %s (id %d, %s, %s)\n", g.name(), g.id(),
                                            g.state(), g.mac().empty() ? "-" : g.mac()));
        absl::StrAppend(&o, absl::StrFormat("  %5s %12s %14s %10s %12s %14s %10s\n", "QUEUE",
                                            "RX_PKTS", "RX_BYTES", "RX_DROP", "TX_PKTS",
                                            "TX_BYTES", "TX_DROP"));
        for (const auto& q : g.queues())
          absl::StrAppend(&o, absl::StrFormat("  %5d %12d %14d %10d %12d %14d %10d\n", q.queue(),
                                              q.rx_packets(), q.rx_bytes(), q.rx_dropped(),
                                              q.tx_packets(), q.tx_bytes(), q.tx_dropped()));
        if (g.queues_size() == 0) o += "  (no queues started)\n";
      }
      if (r.guests_size() == 0) o += "(no guests)\n";
      break;
    case NpactlCommand::kAgent:
      o = absl::StrFormat("agent     %s\nuptime    %.1f s\nguests    %d\nswitch    %d unicast, %d flooded\n",
                          r.agent_name(), r.uptime_ms() / 1000.0, r.guests_size(),
                          r.switch_unicast(), r.switch_flooded());
      if (r.has_uplink()) {
        const auto& u = r.uplink();
        absl::StrAppend(&o, absl::StrFormat(
                                "uplink    %s: rx %d pkts %d B (%d dropped), tx %d pkts %d B (%d dropped)\n",
                                u.name(), u.rx_packets(), u.rx_bytes(), u.rx_dropped(),
                                u.tx_packets(), u.tx_bytes(), u.tx_dropped()));
      } else {
        o += "uplink    none\n";
      }
      break;
  }
  return o;
}

std::string FormatMigrateTable(const control::AdminReply& r) {
  std::string o = absl::StrFormat("%-10s %10s  %s\n", "PHASE", "MS", "DETAIL");
  uint64_t total = 0;
  for (const auto& p : r.phases()) {
    total += p.duration_us();
    absl::StrAppend(&o, absl::StrFormat("%-10s %10.3f  %s\n", p.name(), p.duration_us() / 1000.0,
                                        p.detail()));
  }
  absl::StrAppend(&o, absl::StrFormat("%-10s %10.3f  state %s\n", "total", total / 1000.0,
                                      r.migration_state().empty() ? "-" : r.migration_state()));
  if (r.has_error() && r.error().code() != control::Error::UNSPECIFIED)
    absl::StrAppend(&o, "error: ", r.error().message(), "\n");
  else if (!r.message().empty())
    absl::StrAppend(&o, r.message(), "\n");
  return o;
}

std::string FormatMigrateJson(const control::AdminReply& r, const std::string& guest,
                              const std::string& to) {
  uint64_t total = 0;
  std::string phases;
  for (const auto& p : r.phases()) {
    total += p.duration_us();
    absl::StrAppend(&phases, phases.empty() ? "" : ",", "{\"name\":", JsonString(p.name()),
                    ",\"duration_us\":", p.duration_us(), ",\"detail\":", JsonString(p.detail()), "}");
  }
  std::string o = absl::StrCat("{\"agent\":", JsonString(r.agent_name()), ",\"guest\":", JsonString(guest),
                               ",\"to\":", JsonString(to), ",\"state\":", JsonString(r.migration_state()),
                               ",\"message\":", JsonString(r.message()), ",\"total_us\":", total,
                               ",\"phases\":[", phases, "]");
  if (r.has_error() && r.error().code() != control::Error::UNSPECIFIED)
    absl::StrAppend(&o, ",\"error\":{\"code\":", JsonString(control::Error::Code_Name(r.error().code())),
                    ",\"message\":", JsonString(r.error().message()), "}");
  absl::StrAppend(&o, "}\n");
  return o;
}

}  // namespace npa::agent
