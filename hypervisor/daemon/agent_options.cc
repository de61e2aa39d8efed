// hypervisor/daemon/agent_options.cc — see agent_options.h.
#include "hypervisor/daemon/agent_options.h"

#include <sched.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "hypervisor/daemon/agent_config.h"
#include "hypervisor/daemon/agent_metrics.h"

namespace npa::agent {
namespace {

template <typename T>
bool ParseNum(const char* s, T lo, T hi, T* out) {
  long long v;
  if (!absl::SimpleAtoi(s, &v) || v < static_cast<long long>(lo) || v > static_cast<long long>(hi))
    return false;
  *out = static_cast<T>(v);
  return true;
}

}  // namespace

const char kAgentUsage[] =
    "NAME\n"
    "    npa-agent - npa host agent: emulated-path back end, MAC switch, uplink\n"
    "\n"
    "SYNOPSIS\n"
    "    npa-agent [--config FILE] [--control PATH] [--admin PATH] [--vhost-user PATH]...\n"
    "              [--tap NAME [--tap-persist]]\n"
    "              [--mode switch|sink|loopback] [--cpu N] [--burst N] [--idle-spins N]\n"
    "              [--coalesce-us US]\n"
    "              [--name NAME] [--mtu N] [--log-level LEVEL]\n"
    "              [--log-format text|json]\n"
    "              [--vf PCI[,reset=METHOD]]... [--vf-restore-driver]\n"
    "              [--vf-accept-timeout MS] [--vf-revoke-timeout MS] [--vf-force-grace MS]\n"
    "              [--require-sealed-memory] [--max-guest-memory BYTES] [--max-guests N]\n"
    "              [--max-sessions-per-pid N] [--max-sessions-per-uid N]\n"
    "              [--hello-timeout MS] [--negotiate-timeout MS] [--admin-idle-timeout MS]\n"
    "              [--control-backlog BYTES]\n"
    "              [--tls-cert F --tls-key F --tls-ca F] [--migration-listen HOST:PORT]\n"
    "              [--migration-grace MS] [--migration-hold MS] [--rarp-schedule MS,...]\n"
    "              [--migration-handshake-timeout MS]\n"
    "              [--restart-roster PATH|none] [--restart-grace MS]\n"
    "              [--metrics-listen ADDR:PORT]\n"
    "    npa-agent --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    Serves guests over vhost-user (each guest's virtio rings are polled by\n"
    "    one dataplane thread) and switches their frames between each other and\n"
    "    an optional TAP uplink with a MAC-learning switch. Guests attach through\n"
    "    the control socket (npa shell: Hello/Welcome, include/npa/control.proto)\n"
    "    or through plain vhost-user sockets (DPDK net_virtio_user and other\n"
    "    front ends without the control protocol). npactl(1) talks to the\n"
    "    control socket.\n"
    "\n"
    "OPTIONS\n"
    "    --config FILE      read settings from FILE first: one per line, a flag's\n"
    "                       name without -- and its value (\"tap npa0\" or\n"
    "                       \"tap = npa0\"; a switch alone; # comments). Flags on\n"
    "                       the command line override the file. The packaged\n"
    "                       unit uses /etc/npa/agent.conf. A bad line is named\n"
    "                       by file and line; exit 2.\n"
    "    --control PATH     UNIX socket for guest shells and npactl\n"
    "                       (default /run/npa/agent.sock; the directory is\n"
    "                       created if missing). Removed on exit.\n"
    "    --vhost-user PATH  listen for plain vhost-user front ends at PATH;\n"
    "                       repeatable. If PATH is a directory, the socket is\n"
    "                       PATH/vhost-user.sock. Every connection is one guest\n"
    "                       (transport \"vhost-user-socket\", name vhost<ID>).\n"
    "    --require-sealed-memory\n"
    "                       also require plain vhost-user front ends to seal\n"
    "                       their memory fds against shrinking (F_SEAL_SHRINK);\n"
    "                       SET_MEM_TABLE with an unsealed fd closes the guest.\n"
    "                       Control-socket guests (npa shells) must always seal:\n"
    "                       a guest that shrinks a mapped memfd would SIGBUS the\n"
    "                       agent. Off by default because DPDK and QEMU do not\n"
    "                       seal (docs/operator-guide.md, \"Guest memory\").\n"
    "    --max-sessions-per-pid N, --max-sessions-per-uid N\n"
    "                       control sessions one process / one user may hold\n"
    "                       (default 16 / 128); over => Error LIMIT, closed.\n"
    "    --hello-timeout MS   a connection with no first frame is closed after\n"
    "                       MS (default 5000).\n"
    "    --negotiate-timeout MS  a guest whose vhost-user back end is not ready\n"
    "                       MS after its hello is closed (default 30000).\n"
    "    --admin-idle-timeout MS  an npactl session idle for MS is closed\n"
    "                       (default 60000).\n"
    "    --control-backlog BYTES  replies a peer may leave unread before it is\n"
    "                       cut off (default 262144; also 64 frames, 64 fds).\n"
    "    --tap NAME         create (or attach to) TAP interface NAME as the\n"
    "                       uplink, with IFF_VNET_HDR, and bring it up. Without\n"
    "                       it the agent has no uplink: guests reach only each\n"
    "                       other.\n"
    "    --tap-persist      make the TAP persistent (TUNSETPERSIST): it stays,\n"
    "                       in its bridge, with its addresses, when the agent\n"
    "                       exits, is killed or is upgraded, and the next agent\n"
    "                       attaches to it. Frames the bridge sends it while no\n"
    "                       agent runs are dropped by the kernel and counted in\n"
    "                       its TX dropped (ip -s link). Remove it with\n"
    "                       ip link del NAME.\n"
    "    --mode MODE        switch (default): MAC-learning switch between guests\n"
    "                       and the uplink. sink: consume and count guest TX (a\n"
    "                       benchmark peer). loopback: reflect each guest's TX\n"
    "                       into its own RX.\n"
    "    --cpu N            pin the dataplane thread to CPU N.\n"
    "    --burst N          frames per burst, 1..256 (default 32).\n"
    "    --idle-spins N     empty polling loops before the dataplane thread\n"
    "                       sleeps until a guest kicks, 0..10000000 (default\n"
    "                       2000, some 100 us here). Fewer: less CPU at light\n"
    "                       load, a wake-up more often (docs/PERFORMANCE.md,\n"
    "                       \"Latency and idle cost\").\n"
    "    --coalesce-us US   interrupt moderation, 1..10000 us (default 0: off).\n"
    "                       While traffic flows the dataplane waits US between\n"
    "                       polls instead of spinning or asking for kicks: a\n"
    "                       frame waits up to US longer, each guest RX queue\n"
    "                       gets at most one interrupt per US, and light\n"
    "                       traffic costs both sides far fewer wake-ups. After\n"
    "                       10 ms (or 8 x US) without traffic it sleeps until\n"
    "                       kicked. --idle-spins does not apply then.\n"
    "    --name NAME        agent name reported to guests and npactl\n"
    "                       (default npa-agent).\n"
    "    --mtu N            MTU offered to guests and set on the TAP, 68..9000\n"
    "                       (default 1500).\n"
    "    --log-level L      error, warn, info (default) or debug. Also\n"
    "                       NPA_LOG_LEVEL. Logs go to stderr.\n"
    "    --log-format F     text (default) or json: one JSON object per line,\n"
    "                       with guest and vf as fields on the lines that\n"
    "                       concern one. Also NPA_LOG_FORMAT.\n"
    "    --vf PCI[,reset=M] put PCI function PCI in the VF pool (repeatable):\n"
    "                       npactl vf attach may then bind it to vfio-pci and\n"
    "                       offer it to a guest. reset=M writes sysfs\n"
    "                       reset_method before binding (default: \"bus\" when\n"
    "                       the function has no FLR, else the kernel's choice).\n"
    "                       Needs an IOMMU (intel_iommu=on) and vfio-pci loaded.\n"
    "    --vf-restore-driver  when a VF returns to the pool, bind its original\n"
    "                       driver again (default: it stays on vfio-pci).\n"
    "    --vf-accept-timeout MS  how long a guest has to answer a VF offer\n"
    "                       (default 10000).\n"
    "    --vf-revoke-timeout MS  how long a guest has to answer a revoke before\n"
    "                       the agent forces it (default 5000).\n"
    "    --vf-force-grace MS  npactl vf detach --force first raises the VF's\n"
    "                       VFIO REQ interrupt, then waits this long for the\n"
    "                       guest to let go before it resets and unbinds the\n"
    "                       function anyway (default 3000).\n"
    "    --max-guest-memory BYTES  memory one guest may have mapped (vhost-user\n"
    "                       regions, RegionAnnounce), default 4294967296.\n"
    "    --max-guests N     guests at once, migration reservations included\n"
    "                       (default 256).\n"
    "    --tls-cert F, --tls-key F, --tls-ca F\n"
    "                       this agent's certificate and key (PEM) and the CA\n"
    "                       that signs its peers' certificates: mutual TLS 1.3\n"
    "                       between agents (docs/migration.md). All three or\n"
    "                       none; without them npactl migrate is refused.\n"
    "    --migration-listen HOST:PORT\n"
    "                       accept guests migrated from other agents (needs the\n"
    "                       TLS files). No listener without it.\n"
    "    --migration-grace MS  after a commit, frames that still reach this agent\n"
    "                       for the guest are forwarded to the destination for\n"
    "                       this long (default 2000); later ones are lost.\n"
    "    --migration-hold MS  how long a destination keeps a slot for the\n"
    "                       shell, and the source its own (default 10000).\n"
    "    --migration-handshake-timeout MS  the TLS connect and handshake between\n"
    "                       agents, as source and as destination (default 5000,\n"
    "                       100..120000).\n"
    "    --rarp-schedule MS,...  gaps between the RARP announcements after a\n"
    "                       guest resumed here; the first leaves at once\n"
    "                       (default 50,100,200,400).\n"
    "    --restart-roster PATH  the file where the agent keeps the names and\n"
    "                       MACs of its shell guests (default <control>.guests;\n"
    "                       none: no file). Started again (after kill -9 or\n"
    "                       SIGTERM), it holds all traffic until those guests\n"
    "                       have reconnected or --restart-grace MS (default\n"
    "                       1000) passed, so none is lost to a guest not back\n"
    "                       yet; a VF a guest kept driving is re-adopted, not\n"
    "                       offered or reset until given back (docs/security.md\n"
    "                       \"Agent restart\").\n"
    "    --metrics-listen ADDR:PORT  serve Prometheus metrics over HTTP at\n"
    "                       http://ADDR:PORT/metrics (off by default). ADDR is\n"
    "                       a numeric IPv4 address, e.g. 127.0.0.1:9464; the\n"
    "                       server listens on that address only, with two\n"
    "                       threads. Per guest and queue: packets, bytes,\n"
    "                       drops; per VF: state, resets, attaches; switch,\n"
    "                       revoke and migration durations (docs/operator-\n"
    "                       guide.md \"Metrics\"). No authentication: keep it\n"
    "                       on a local or management address.\n"
    "    --help             this text.   --version  print the version.\n"
    "\n"
    "SIGNALS\n"
    "    SIGINT, SIGTERM    a planned stop: the dataplane finishes the frames it\n"
    "                       is moving and reads no ring after that (what the\n"
    "                       guests queue waits in their rings), every guest\n"
    "                       session is closed (Bye; the shells reconnect to the\n"
    "                       next agent at their rings' indices), the sockets are\n"
    "                       removed, exit 0. The restart roster is kept.\n"
    "\n"
    "SERVICE\n"
    "    Under systemd (NOTIFY_SOCKET set; the npa-agent.service unit, Type=notify)\n"
    "    the agent sends READY=1 once its sockets are bound, STATUS= with the\n"
    "    number of guests, and STOPPING=1 at shutdown. With WatchdogSec= it pings\n"
    "    every half period, but only while both the control loop and the\n"
    "    dataplane thread make progress, so a wedged agent is restarted.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 clean shutdown, 1 runtime failure (socket, TAP, thread), 2 usage.\n"
    "\n"
    "EXAMPLES\n"
    "    npa-agent --control /run/npa/agent.sock --tap npa0 --cpu 1\n"
    "    npa-agent --vhost-user /tmp/vhost.sock --mode sink --cpu 1\n"
    "    npa-agent --control /run/npa/b.sock --tls-cert b.pem --tls-key b.key \\\n"
    "              --tls-ca ca.pem --migration-listen 0.0.0.0:7000\n";

absl::StatusOr<AgentArgs> ParseAgentArgs(const std::vector<std::string>& argv, AgentOptions* o) {
  std::string where;   // "FILE:LINE" while a setting from --config FILE is parsed
  std::string roster;  // --restart-roster; "" = <control>.guests
  auto bad = [&where](absl::string_view msg, const char* arg = nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, where.empty() ? "" : ": ", msg,
                                                   arg != nullptr ? ": " : "",
                                                   arg != nullptr ? arg : ""));
  };
  // --config FILE first (agent_config.h): its settings come before the
  // command line's flags, so a flag given here overrides the file.
  std::vector<std::string> args;
  std::vector<std::string> origin;  // "FILE:LINE" for a setting from the file
  for (size_t i = 0; i < argv.size(); i++) {
    if (argv[i] != "--config") continue;
    if (i + 1 >= argv.size() || argv[i + 1].empty()) return bad("--config needs a file");
    auto conf = ReadAgentConfig(argv[i + 1]);
    if (!conf.ok()) return bad(std::string(conf.status().message()).c_str());
    for (const ConfigArg& c : *conf) {
      for (const std::string& w : c.argv) {
        args.push_back(w);
        origin.push_back(c.origin);
      }
    }
  }
  for (size_t i = 0; i < argv.size(); i++) {
    if (argv[i] == "--config" && i + 1 < argv.size()) {
      i++;
      continue;
    }
    args.push_back(argv[i]);
    origin.emplace_back();
  }
  const size_t nargs = args.size();
  for (size_t i = 0; i < nargs; i++) {
    const std::string& a = args[i];
    where = origin[i];  // a bad setting names its line
    auto value = [&](const char** v) {
      if (i + 1 >= nargs) return false;
      *v = args[++i].c_str();
      return true;
    };
    const char* v = nullptr;
    if (a == "--help" || a == "-h") {
      return AgentArgs::kHelp;
    } else if (a == "--version") {
      return AgentArgs::kVersion;
    } else if (a == "--control") {
      if (!value(&v) || !*v) return bad("--control needs a path");
      o->control.control_path = v;
      o->control_given = true;
    } else if (a == "--admin") {
      if (!value(&v) || !*v) return bad("--admin needs a path");
      o->control.admin_path = v;
    } else if (a == "--tls-cert" || a == "--tls-key" || a == "--tls-ca") {
      if (!value(&v) || !*v) return bad((a + " needs a file").c_str());
      (a == "--tls-cert" ? o->tls.cert_file : a == "--tls-key" ? o->tls.key_file : o->tls.ca_file) = v;
    } else if (a == "--migration-listen") {
      if (!value(&v) || !strchr(v, ':')) return bad("--migration-listen needs HOST:PORT", v);
      o->migration_listen = v;
    } else if (a == "--migration-grace") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 0, 60000, &o->control.migration_grace_ms))
        return bad("--migration-grace needs 0..60000 ms", v);
    } else if (a == "--migration-hold") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 100, 600000, &o->control.migration_hold_ms))
        return bad("--migration-hold needs 100..600000 ms", v);
    } else if (a == "--migration-handshake-timeout") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 100, 120000, &o->control.migration_handshake_timeout_ms))
        return bad("--migration-handshake-timeout needs 100..120000 ms", v);
    } else if (a == "--rarp-schedule") {
      if (!value(&v)) return bad("--rarp-schedule needs MS,MS,...");
      o->control.rarp_gaps_ms.clear();
      std::string list = v;
      for (size_t p = 0; p <= list.size();) {
        size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        uint32_t ms;
        if (!ParseNum<uint32_t>(list.substr(p, c - p).c_str(), 1, 10000, &ms) || o->control.rarp_gaps_ms.size() >= 16)
          return bad("--rarp-schedule needs up to 16 gaps of 1..10000 ms, comma-separated", v);
        o->control.rarp_gaps_ms.push_back(ms);
        p = c + 1;
      }
    } else if (a == "--max-guest-memory") {
      if (!value(&v) || !ParseNum<uint64_t>(v, 1ull << 20, 1ull << 40, &o->control.max_guest_memory))
        return bad("--max-guest-memory needs 1048576..1099511627776 bytes", v);
    } else if (a == "--max-guests") {
      if (!value(&v) || !ParseNum<size_t>(v, 1, 4096, &o->control.max_guests))
        return bad("--max-guests needs 1..4096", v);
    } else if (a == "--require-sealed-memory") {
      o->require_sealed = true;
    } else if (a == "--vhost-user") {
      if (!value(&v) || !*v) return bad("--vhost-user needs a path");
      o->control.vhost_user_paths.push_back(v);
    } else if (a == "--tap") {
      if (!value(&v) || !*v) return bad("--tap needs an interface name");
      o->tap = v;
    } else if (a == "--tap-persist") {
      o->tap_persist = true;
    } else if (a == "--mode") {
      if (!value(&v)) return bad("--mode needs switch, sink or loopback");
      auto m = ParseDataplaneMode(v);
      if (!m) return bad("unknown --mode (want switch, sink or loopback)", v);
      o->dataplane.mode = *m;
    } else if (a == "--cpu") {
      if (!value(&v) || !ParseNum<int>(v, 0, CPU_SETSIZE - 1, &o->dataplane.cpu))
        return bad("--cpu needs a CPU number", v);
    } else if (a == "--burst") {
      if (!value(&v) || !ParseNum<uint16_t>(v, 1, 256, &o->dataplane.burst))
        return bad("--burst needs a number in 1..256", v);
    } else if (a == "--idle-spins") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 0, 10000000, &o->dataplane.idle_spins))
        return bad("--idle-spins needs a number in 0..10000000", v);
    } else if (a == "--coalesce-us") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 0, 10000, &o->dataplane.coalesce_us))
        return bad("--coalesce-us needs a number in 0..10000", v);
    } else if (a == "--name") {
      if (!value(&v) || !*v) return bad("--name needs a name");
      o->control.agent_name = v;
    } else if (a == "--mtu") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 68, 9000, &o->control.mtu))
        return bad("--mtu needs a number in 68..9000", v);
    } else if (a == "--vf") {
      if (!value(&v)) return bad("--vf needs a PCI address");
      auto e = ParseVfPoolArg(v);
      if (!e.ok()) return bad(std::string(e.status().message()).c_str());
      o->vfs.pool.push_back(*e);
    } else if (a == "--vf-restore-driver") {
      o->vfs.restore_driver = true;
    } else if (a == "--vf-accept-timeout") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 1, 600000, &o->control.vf_accept_timeout_ms))
        return bad("--vf-accept-timeout needs 1..600000 ms", v);
    } else if (a == "--vf-revoke-timeout") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 1, 600000, &o->control.vf_revoke_timeout_ms))
        return bad("--vf-revoke-timeout needs 1..600000 ms", v);
    } else if (a == "--max-sessions-per-pid") {
      if (!value(&v) || !ParseNum<size_t>(v, 1, 4096, &o->control.session_limits.max_per_pid))
        return bad("--max-sessions-per-pid needs 1..4096", v);
    } else if (a == "--max-sessions-per-uid") {
      if (!value(&v) || !ParseNum<size_t>(v, 1, 4096, &o->control.session_limits.max_per_uid))
        return bad("--max-sessions-per-uid needs 1..4096", v);
    } else if (a == "--hello-timeout") {
      if (!value(&v) ||
          !ParseNum<uint32_t>(v, 10, 600000, &o->control.session_limits.undecided_timeout_ms))
        return bad("--hello-timeout needs 10..600000 ms", v);
    } else if (a == "--negotiate-timeout") {
      if (!value(&v) ||
          !ParseNum<uint32_t>(v, 10, 3600000, &o->control.session_limits.negotiate_timeout_ms))
        return bad("--negotiate-timeout needs 10..3600000 ms", v);
    } else if (a == "--admin-idle-timeout") {
      if (!value(&v) ||
          !ParseNum<uint32_t>(v, 10, 3600000, &o->control.session_limits.admin_idle_timeout_ms))
        return bad("--admin-idle-timeout needs 10..3600000 ms", v);
    } else if (a == "--control-backlog") {
      if (!value(&v) ||
          !ParseNum<size_t>(v, 65540, 64u << 20, &o->control.session_limits.send_queue.max_bytes))
        return bad("--control-backlog needs 65540..67108864 bytes", v);
    } else if (a == "--vf-force-grace") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 1, 600000, &o->control.vf_force_grace_ms))
        return bad("--vf-force-grace needs 1..600000 ms", v);
    } else if (a == "--restart-roster") {
      if (!value(&v) || !*v) return bad("--restart-roster needs a path or none");
      roster = v;
    } else if (a == "--restart-grace") {
      if (!value(&v) || !ParseNum<uint32_t>(v, 10, 60000, &o->control.restart_grace_ms))
        return bad("--restart-grace needs 10..60000 ms", v);
    } else if (a == "--metrics-listen") {
      if (!value(&v)) return bad("--metrics-listen needs ADDR:PORT");
      if (absl::Status s = ParseMetricsListen(v); !s.ok())
        return bad(std::string(s.message()).c_str());
      o->metrics_listen = v;
    } else if (a == "--log-level") {
      if (!value(&v)) return bad("--log-level needs error, warn, info or debug");
      std::string l = v;
      if (l == "error") o->log_level = npa::LogLevel::kError;
      else if (l == "warn") o->log_level = npa::LogLevel::kWarn;
      else if (l == "info") o->log_level = npa::LogLevel::kInfo;
      else if (l == "debug") o->log_level = npa::LogLevel::kDebug;
      else return bad("unknown --log-level (want error, warn, info or debug)", v);
    } else if (a == "--log-format") {
      if (!value(&v)) return bad("--log-format needs text or json");
      npa::LogFormat f;
      if (!npa::ParseLogFormat(v, &f)) return bad("unknown --log-format (want text or json)", v);
      o->log_format = f;
    } else {
      return bad("unknown argument", a.c_str());
    }
  }
  where.clear();
  if (!o->control_given) o->control.control_path = kDefaultControlPath;
  if (roster.empty() && !o->control.control_path.empty()) roster = o->control.control_path + ".guests";
  o->control.restart_roster_path = roster == "none" ? "" : roster;
  const int tls_files = !o->tls.cert_file.empty() + !o->tls.key_file.empty() + !o->tls.ca_file.empty();
  if (tls_files != 0 && tls_files != 3)
    return bad("--tls-cert, --tls-key and --tls-ca go together (all three or none)");
  if (!o->migration_listen.empty() && tls_files == 0)
    return bad("--migration-listen needs --tls-cert, --tls-key and --tls-ca");
  if (o->tap_persist && o->tap.empty()) return bad("--tap-persist needs --tap NAME");
  return AgentArgs::kRun;
}

}  // namespace npa::agent
