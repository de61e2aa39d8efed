#include "hypervisor/npactl/npactl_format.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace npa::agent {
namespace {

Json GuestJson(const control::GuestInfo& g, bool with_queues) {
  Json o = {{"id", g.id()},
            {"name", g.name()},
            {"mac", g.mac()},
            {"state", g.state()},
            {"path", g.path()},
            {"transport", g.transport()},
            {"queue_pairs", g.queue_pairs()},
            {"vhost_ready", g.vhost_ready()},
            {"pid", g.pid()}};
  if (with_queues) {
    Json qs = Json::array();
    for (const auto& q : g.queues())
      qs.push_back({{"queue", q.queue()},
                    {"rx_packets", q.rx_packets()},
                    {"rx_bytes", q.rx_bytes()},
                    {"rx_dropped", q.rx_dropped()},
                    {"tx_packets", q.tx_packets()},
                    {"tx_bytes", q.tx_bytes()},
                    {"tx_dropped", q.tx_dropped()}});
    o["queues"] = std::move(qs);
  }
  return o;
}

bool HasError(const control::AdminReply& r) {
  return r.has_error() && r.error().code() != control::Error::UNSPECIFIED;
}

}  // namespace

std::string DumpJson(const Json& j) {
  // The agent's strings (guest names come from guests) need not be UTF-8:
  // invalid bytes become U+FFFD instead of an exception, so the output is
  // valid JSON for any input.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string FormatErrorJson(const control::AdminReply& r) {
  return DumpJson({{"error",
                    {{"code", control::Error::Code_Name(r.error().code())},
                     {"message", r.error().message()}}}});
}

std::string FormatJson(const control::AdminReply& r, NpactlCommand cmd) {
  Json o = {{"agent", r.agent_name()}};
  if (cmd == NpactlCommand::kAgent) {
    o["uptime_ms"] = r.uptime_ms();
    o["guests"] = r.guests_size();
    o["switch"] = {{"unicast", r.switch_unicast()}, {"flooded", r.switch_flooded()}};
    if (r.has_uplink()) {
      const auto& u = r.uplink();
      o["uplink"] = {{"name", u.name()},           {"rx_packets", u.rx_packets()},
                     {"rx_bytes", u.rx_bytes()},   {"rx_dropped", u.rx_dropped()},
                     {"tx_packets", u.tx_packets()}, {"tx_bytes", u.tx_bytes()},
                     {"tx_dropped", u.tx_dropped()}};
    } else {
      o["uplink"] = nullptr;
    }
  } else {
    Json gs = Json::array();
    for (const auto& g : r.guests()) gs.push_back(GuestJson(g, cmd == NpactlCommand::kStats));
    o["guests"] = std::move(gs);
  }
  return DumpJson(o);
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

std::string FormatMigrateHeader() { return absl::StrFormat("%-10s %10s  %s\n", "PHASE", "MS", "DETAIL"); }

std::string FormatMigratePhase(const control::MigrationPhase& p) {
  return absl::StrFormat("%-10s %10.3f  %s\n", p.name(), p.duration_us() / 1000.0, p.detail());
}

std::string FormatMigrateTail(const control::AdminReply& r) {
  uint64_t total = 0;
  for (const auto& p : r.phases()) total += p.duration_us();
  std::string o = absl::StrFormat("%-10s %10.3f  state %s\n", "total", total / 1000.0,
                                  r.migration_state().empty() ? "-" : r.migration_state());
  if (HasError(r))
    absl::StrAppend(&o, "error: ", r.error().message(), "\n");
  else if (!r.message().empty())
    absl::StrAppend(&o, r.message(), "\n");
  return o;
}

std::string FormatMigrateTable(const control::AdminReply& r) {
  std::string o = FormatMigrateHeader();
  for (const auto& p : r.phases()) o += FormatMigratePhase(p);
  return o + FormatMigrateTail(r);
}

std::string FormatMigrateJson(const control::AdminReply& r, const std::string& guest,
                              const std::string& to) {
  uint64_t total = 0;
  Json phases = Json::array();
  for (const auto& p : r.phases()) {
    total += p.duration_us();
    phases.push_back({{"name", p.name()}, {"duration_us", p.duration_us()}, {"detail", p.detail()}});
  }
  Json o = {{"agent", r.agent_name()}, {"guest", guest},        {"to", to},
            {"state", r.migration_state()}, {"message", r.message()}, {"total_us", total},
            {"phases", std::move(phases)}};
  if (HasError(r))
    o["error"] = {{"code", control::Error::Code_Name(r.error().code())},
                  {"message", r.error().message()}};
  return DumpJson(o);
}

}  // namespace npa::agent
