// npactl: the operator CLI for npa-agent. See --help and
// docs/operator-guide.md.
#include <poll.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"
#include "hypervisor/npactl/npactl_events_format.h"
#include "hypervisor/npactl/npactl_format.h"
#include "hypervisor/npactl/npactl_vf_format.h"

namespace {

constexpr int kExitOk = 0, kExitAgentError = 1, kExitUsage = 2, kExitConnect = 3;

const char kUsage[] =
    "NAME\n"
    "    npactl - query a running npa-agent\n"
    "\n"
    "SYNOPSIS\n"
    "    npactl [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "\n"
    "COMMANDS\n"
    "    guests         list attached guests: id, name, MAC, lifecycle state,\n"
    "                   path, transport, queue pairs, vhost readiness, pid.\n"
    "    stats [GUEST]  per-queue counters of every guest, or of GUEST (a name\n"
    "                   or a numeric id). rx = agent to guest, tx = guest to\n"
    "                   agent.\n"
    "    agent          agent name, uptime, guest count, switch and uplink\n"
    "                   counters.\n"
    "    vf list        PCI inventory (network functions, SR-IOV PFs, VFs) with\n"
    "                   the agent's pool state and which guest holds each VF.\n"
    "    vf attach GUEST PCI    offer pooled VF PCI to GUEST; waits for the\n"
    "                   guest's answer.\n"
    "    vf detach [--force] GUEST   revoke GUEST's VF (planned: the guest\n"
    "                   quiesces first; --force: raise the VF's VFIO REQ,\n"
    "                   take it back after the guest lets go or 3 s).\n"
    "    vf reset PCI   VFIO_DEVICE_RESET of a free pooled VF.\n"
    "    vf enable PF N set sriov_numvfs of SR-IOV PF to N (0 disables).\n"
    "    migrate GUEST --to HOST:PORT   move GUEST to the agent whose migration\n"
    "                   listener is HOST:PORT (docs/migration.md); prints each\n"
    "                   phase's duration. Needs npa-agent --tls-cert/--tls-key/\n"
    "                   --tls-ca on both agents.\n"
    "    events [--follow]   the agent's recent lifecycle events (guest up and\n"
    "                   down, VF attach/accept/revoke/reset/release, fallback,\n"
    "                   migrations); --follow streams new ones until Ctrl-C.\n"
    "    COMMAND --help describes one command.\n"
    "\n"
    "OPTIONS\n"
    "    --socket PATH  the agent's admin socket (npa-agent --admin; default\n"
    "                   $NPA_ADMIN_SOCKET, else /run/npa/agent.sock.admin, the\n"
    "                   default control socket + \".admin\"). The guests'\n"
    "                   control socket refuses operator requests (DENIED).\n"
    "    --json         print one JSON object on stdout instead of a table.\n"
    "    --timeout MS   how long to wait for the agent (default 5000; vf attach\n"
    "                   and detach wait 20000 for the guest's answer).\n"
    "    --help         this text.   --version  print the version.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 ok; 1 the agent answered with an error (e.g. no such guest) or\n"
    "    broke the protocol; 2 usage error; 3 cannot connect to the agent.\n"
    "\n"
    "EXAMPLES\n"
    "    npactl guests\n"
    "    npactl --json stats guest0 | python3 -m json.tool\n"
    "    npactl vf attach guest0 0000:03:00.0 && npactl vf detach guest0\n"
    "    npactl migrate guest0 --to 10.0.0.2:7000 --json\n"
    "    npactl events --follow --json\n";

const char* CommandHelp(const std::string& c) {
  if (c == "guests")
    return "npactl guests: list attached guests.\n"
           "  Columns: ID NAME MAC STATE PATH TRANSPORT QP READY PID.\n"
           "  STATE is the guest lifecycle state (CONNECTED, NEGOTIATING, READY,\n"
           "  RUNNING, CLOSING, BROKEN, ...). --json: {\"agent\":..., \"guests\":[...]}\n";
  if (c == "stats")
    return "npactl stats [GUEST]: per-queue counters of all guests, or of GUEST\n"
           "  (name or numeric id). rx = agent->guest, tx = guest->agent.\n"
           "  Exit 1 if GUEST is not attached. --json: guests with \"queues\" arrays.\n";
  if (c == "vf")
    return "npactl vf list | attach GUEST PCI | detach [--force] GUEST | reset PCI |\n"
           "          enable PF N\n"
           "  list: Columns PCI ID SUBSYS CLASS DRIVER GROUP SRIOV RESET POOL STATE GUEST.\n"
           "    STATE is the VF lifecycle state (FREE, BINDING, BOUND, MAPPED, OFFERED,\n"
           "    ACTIVE, REVOKING, RESETTING, FAILED); '-' = not in the agent's pool.\n"
           "  attach: bind to vfio-pci, DMA-map the guest's regions, reset, offer the\n"
           "    device fd; exit 0 once the guest accepts, 1 if it declines or times out.\n"
           "  detach: Revoke, wait for RevokeDone, reset, unmap, back to the pool. If the\n"
           "    guest does not answer in time the agent forces it (and says so).\n"
           "  detach --force: no control message; the agent fires the VF's VFIO REQ\n"
           "    interrupt (what the kernel sends on unbind). A cooperating guest\n"
           "    drains the device and lets go; the agent then resets, unmaps and\n"
           "    unbinds it. The reply gives the guest's tx_inflight_lost, or says the\n"
           "    guest did not let go within the grace period (npa-agent\n"
           "    --vf-force-grace) and what the VF held was lost uncounted.\n"
           "  --json: {\"agent\", \"message\", \"vfs\": [...]} (docs/vf-management.md).\n";
  if (c == "migrate")
    return "npactl migrate GUEST --to HOST:PORT [--json] [--timeout MS]: move GUEST\n"
           "  to another agent. The source revokes a VF first, offers the guest's state\n"
           "  (the destination checks features, memory, a slot and reserves one), stops\n"
           "  the rings, sends the ring indices, tells the shell where to go and\n"
           "  forwards frames that still arrive for it. Output: PHASE MS DETAIL per\n"
           "  phase (revoke, offer, stop, commit, switch), each as it ends, then the\n"
           "  total and the final state; exit 0 once the destination resumed the\n"
           "  guest, 1 if it was refused or aborted (the guest then still runs on\n"
           "  the source, and the message says so). --timeout: the agent's limit\n"
           "  until the commit (default 30000); npactl waits that plus 20 s for the\n"
           "  answer.\n"
           "  --json: {\"agent\", \"guest\", \"to\", \"state\", \"message\",\n"
           "  \"total_us\", \"phases\": [{\"name\", \"duration_us\", \"detail\"}], \"error\"?}.\n";
  if (c == "events")
    return "npactl events [--follow] [--json]: the agent's lifecycle events, oldest\n"
           "  first: the last 256 it keeps, then (--follow) every new one as it\n"
           "  happens, until SIGINT (exit 0) or the agent goes away (exit 1).\n"
           "  Kinds: guest_up guest_down vf_attach vf_accept revoke_begin revoke_done\n"
           "  fallback vf_reset vf_released migration_out migration_in.\n"
           "  Text: SEQ TIME(UTC) KIND guest= vf= took= DETAIL.\n"
           "  --json: one object per line with the keys seq, time_unix_ms, mono_ns,\n"
           "  kind, guest, guest_id, vf, duration_us, detail (always present; \"\"\n"
           "  or 0 when none); a reader that fell behind first gets\n"
           "  {\"kind\":\"missed\",\"count\":N} (docs/operator-guide.md).\n";
  if (c == "agent")
    return "npactl agent: agent name, uptime, guest count, switch counters\n"
           "  (unicast, flooded) and uplink counters. --json: one object.\n";
  return nullptr;
}

int Usage(const char* msg, const char* arg = nullptr) {
  fprintf(stderr, "npactl: %s%s%s\nTry 'npactl --help'.\n", msg, arg ? ": " : "", arg ? arg : "");
  return kExitUsage;
}

volatile sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }

// Prints one reply's events; false if the reply is an error (printed).
bool PrintEvents(const npa::control::AdminReply& r, bool json) {
  using namespace npa::agent;
  if (r.has_error() && r.error().code() != npa::control::Error::UNSPECIFIED) {
    if (json) fputs(FormatErrorJson(r).c_str(), stdout);
    fprintf(stderr, "npactl: %s\n", r.error().message().c_str());
    return false;
  }
  if (r.events_missed())
    fputs((json ? FormatMissedJson(r.events_missed()) : FormatMissedText(r.events_missed())).c_str(),
          stdout);
  for (const auto& e : r.events()) fputs((json ? FormatEventJson(e) : FormatEventText(e)).c_str(), stdout);
  fflush(stdout);
  return true;
}

// npactl events --follow after the first reply: every AdminReply the agent
// streams, until SIGINT (0) or the agent goes away or breaks the protocol (1).
int FollowEvents(npa::ControlChannel& ch, bool json, const std::string& socket_path) {
  for (;;) {
    for (;;) {
      auto f = ch.Pop();
      if (!f.ok()) {
        fprintf(stderr, "npactl: events from %s: %s\n", socket_path.c_str(),
                std::string(f.status().message()).c_str());
        return kExitAgentError;
      }
      if (!f->has_value()) break;
      const npa::control::Envelope& env = (*f)->env;
      if (env.has_bye() || env.has_error()) {
        fprintf(stderr, "npactl: npa-agent ended the event stream: %s\n",
                env.has_bye() ? env.bye().reason().c_str() : env.error().message().c_str());
        return kExitAgentError;
      }
      if (!env.has_admin_reply() || !PrintEvents(env.admin_reply(), json)) return kExitAgentError;
    }
    pollfd p{ch.fd(), POLLIN, 0};
    const int n = poll(&p, 1, 1000);  // SIGINT interrupts it (no SA_RESTART)
    if (g_interrupted) return kExitOk;
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "npactl: poll: %s\n", strerror(errno));
      return kExitAgentError;
    }
    if (n == 0) continue;
    absl::Status st = ch.OnReadable();
    if (absl::IsAborted(st)) {
      fprintf(stderr, "npactl: npa-agent at %s went away\n", socket_path.c_str());
      return kExitAgentError;
    }
    if (!st.ok()) {
      fprintf(stderr, "npactl: events from %s: %s\n", socket_path.c_str(),
              std::string(st.message()).c_str());
      return kExitAgentError;
    }
  }
}

// npactl migrate after the first reply: while the agent sends progress
// replies (Migrate.progress), each phase is printed as it ends (text; --json
// prints the one object at the end), then the final reply. Bounded by
// timeout_ms over all of them.
int FinishMigrate(npa::ControlChannel& ch, npa::control::AdminReply r, bool json,
                  const std::string& guest, const std::string& to, int timeout_ms,
                  const std::string& socket_path) {
  using namespace npa::agent;
  const uint64_t deadline = npa::MonotonicMs() + static_cast<uint64_t>(timeout_ms);
  int printed = 0;
  if (!json) fputs(FormatMigrateHeader().c_str(), stdout);
  while (r.progress()) {
    if (!json) {
      for (const auto& p : r.phases()) fputs(FormatMigratePhase(p).c_str(), stdout);
      printed += r.phases_size();
      fflush(stdout);
    }
    const uint64_t now = npa::MonotonicMs();
    auto next = now < deadline ? ch.ReceiveBlocking(static_cast<int>(deadline - now))
                               : absl::StatusOr<npa::ControlFrame>(absl::DeadlineExceededError(
                                     absl::StrCat("no final reply within ", timeout_ms, " ms")));
    if (!next.ok()) {
      fprintf(stderr, "npactl: migrate %s: no final reply from npa-agent at %s: %s\n", guest.c_str(),
              socket_path.c_str(), std::string(next.status().message()).c_str());
      return kExitAgentError;
    }
    if (!next->env.has_admin_reply()) {
      fprintf(stderr, "npactl: migrate %s: agent answered with %s, not admin_reply\n", guest.c_str(),
              npa::BodyName(next->env));
      return kExitAgentError;
    }
    r = next->env.admin_reply();
  }
  std::string out;
  if (json) {
    out = FormatMigrateJson(r, guest, to);
  } else {
    for (int i = printed; i < r.phases_size(); i++) out += FormatMigratePhase(r.phases(i));
    out += FormatMigrateTail(r);
  }
  fwrite(out.data(), 1, out.size(), stdout);
  const bool failed = r.has_error() && r.error().code() != npa::control::Error::UNSPECIFIED;
  if (failed) fprintf(stderr, "npactl: %s\n", r.error().message().c_str());
  return failed ? kExitAgentError : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace npa;
  using agent::NpactlCommand;
  std::string socket_path =
      getenv("NPA_ADMIN_SOCKET") ? getenv("NPA_ADMIN_SOCKET") : "/run/npa/agent.sock.admin";
  bool json = false;
  int timeout_ms = 5000;
  std::string cmd, arg;
  bool have_arg = false;
  bool force = false, timeout_given = false, follow = false;
  std::vector<std::string> vf_args;
  std::string migrate_to;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      if (!cmd.empty()) {
        fputs(CommandHelp(cmd), stdout);
        return kExitOk;
      }
      fputs(kUsage, stdout);
      return kExitOk;
    } else if (a == "--version") {
      printf("npactl %s\n", NPA_VERSION);
      return kExitOk;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--socket") {
      if (i + 1 >= argc || !*argv[i + 1]) return Usage("--socket needs a path");
      socket_path = argv[++i];
    } else if (a == "--timeout") {
      if (i + 1 >= argc) return Usage("--timeout needs milliseconds");
      char* end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 600000) return Usage("--timeout needs 1..600000 ms", argv[i]);
      timeout_ms = static_cast<int>(v);
      timeout_given = true;
    } else if (a == "--to" && cmd == "migrate") {
      if (i + 1 >= argc || !*argv[i + 1]) return Usage("--to needs HOST:PORT");
      migrate_to = argv[++i];
    } else if (a == "--follow" && cmd == "events") {
      follow = true;
    } else if (a == "--force" && cmd == "vf") {
      force = true;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage("unknown option", argv[i]);
    } else if (cmd.empty()) {
      cmd = a;
      if (!CommandHelp(cmd)) return Usage("unknown command", argv[i]);
    } else if (cmd == "vf" && vf_args.size() < 3) {
      vf_args.push_back(a);
    } else if (!have_arg && (cmd == "stats" || cmd == "migrate")) {
      arg = a;
      have_arg = true;
    } else {
      return Usage("unexpected argument", argv[i]);
    }
  }
  if (cmd.empty()) return Usage("no command given (guests, stats, agent, vf, migrate, events)");

  control::Envelope req;
  NpactlCommand which = NpactlCommand::kAgent;
  bool vf_list = false;
  if (cmd == "vf") {
    const std::string sub = vf_args.empty() ? "" : vf_args[0];
    auto want = [&](size_t n, const char* usage) {
      if (vf_args.size() != n + 1) {
        Usage(usage);
        return false;
      }
      return true;
    };
    auto* ar = req.mutable_admin_request();
    if (sub == "list") {
      if (!want(0, "usage: npactl vf list")) return kExitUsage;
      ar->mutable_vf_list();
      vf_list = true;
    } else if (sub == "attach") {
      if (!want(2, "usage: npactl vf attach GUEST PCI")) return kExitUsage;
      ar->mutable_vf_attach()->set_guest(vf_args[1]);
      ar->mutable_vf_attach()->set_pci(vf_args[2]);
    } else if (sub == "detach") {
      if (!want(1, "usage: npactl vf detach [--force] GUEST")) return kExitUsage;
      ar->mutable_vf_detach()->set_guest(vf_args[1]);
      ar->mutable_vf_detach()->set_force(force);
    } else if (sub == "reset") {
      if (!want(1, "usage: npactl vf reset PCI")) return kExitUsage;
      ar->mutable_vf_reset()->set_pci(vf_args[1]);
    } else if (sub == "enable") {
      if (!want(2, "usage: npactl vf enable PF N")) return kExitUsage;
      char* end;
      long n = strtol(vf_args[2].c_str(), &end, 10);
      if (*end || vf_args[2].empty() || n < 0 || n > 4096) return Usage("N must be 0..4096", vf_args[2].c_str());
      ar->mutable_vf_enable()->set_pf(vf_args[1]);
      ar->mutable_vf_enable()->set_num_vfs(static_cast<uint32_t>(n));
    } else {
      return Usage("vf needs list, attach, detach, reset or enable");
    }
    if (force && sub != "detach") return Usage("--force applies only to vf detach");
    // The agent answers attach/detach only once the guest has (10 s accept,
    // 5 s revoke by default), so wait longer than that unless told otherwise.
    if (!timeout_given && (sub == "attach" || sub == "detach")) timeout_ms = 20000;
  } else if (cmd == "migrate") {
    if (!have_arg || migrate_to.empty()) return Usage("usage: npactl migrate GUEST --to HOST:PORT");
    auto* m = req.mutable_admin_request()->mutable_migrate();
    m->set_guest(arg);
    m->set_to(migrate_to);
    m->set_progress(!json);  // a line per phase as it ends
    if (timeout_given) m->set_timeout_ms(static_cast<uint32_t>(timeout_ms));
    // The agent answers when the move ends: its limit until the commit,
    // then the grace period and the destination's hold.
    timeout_ms = (timeout_given ? timeout_ms : 30000) + 20000;
  } else if (cmd == "events") {
    req.mutable_admin_request()->mutable_events()->set_follow(follow);
    if (follow) {
      // Before the request: a Ctrl-C at any point exits 0 without a trace.
      struct sigaction sa {};
      sa.sa_handler = OnInterrupt;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;  // no SA_RESTART: poll returns EINTR
      sigaction(SIGINT, &sa, nullptr);
      sigaction(SIGTERM, &sa, nullptr);
    }
  } else if (cmd == "guests") {
    req.mutable_admin_request()->mutable_list_guests();
    which = NpactlCommand::kGuests;
  } else if (cmd == "stats") {
    req.mutable_admin_request()->mutable_guest_stats()->set_guest(arg);
    which = NpactlCommand::kStats;
  } else {
    req.mutable_admin_request()->mutable_agent_stats();
    which = NpactlCommand::kAgent;
  }

  auto sock = ConnectUnix(socket_path, std::min(timeout_ms, 1000));
  if (!sock.ok()) {
    fprintf(stderr, "npactl: cannot connect to npa-agent at %s: %s\n", socket_path.c_str(),
            std::string(sock.status().message()).c_str());
    return kExitConnect;
  }
  ControlChannel ch(std::move(*sock));
  if (absl::Status s = ch.Send(req); !s.ok()) {
    fprintf(stderr, "npactl: send request to %s: %s\n", socket_path.c_str(),
            std::string(s.message()).c_str());
    return kExitConnect;
  }
  auto rep = ch.ReceiveBlocking(timeout_ms);
  if (!rep.ok()) {
    fprintf(stderr, "npactl: no reply from npa-agent at %s: %s\n", socket_path.c_str(),
            std::string(rep.status().message()).c_str());
    return kExitAgentError;
  }
  const control::Envelope& env = rep->env;
  if (env.has_error()) {
    fprintf(stderr, "npactl: agent error %s: %s\n",
            control::Error::Code_Name(env.error().code()).c_str(), env.error().message().c_str());
    if (env.error().code() == control::Error::DENIED)
      fprintf(stderr, "npactl: %s is a guest control socket; --socket must name the admin socket "
                      "(npa-agent --admin, default <control socket>.admin)\n",
              socket_path.c_str());
    return kExitAgentError;
  }
  if (!env.has_admin_reply()) {
    fprintf(stderr, "npactl: agent answered with %s, not admin_reply\n", BodyName(env));
    return kExitAgentError;
  }
  const control::AdminReply& r = env.admin_reply();
  if (cmd == "events") {
    if (!PrintEvents(r, json)) return kExitAgentError;
    return follow ? FollowEvents(ch, json, socket_path) : kExitOk;
  }
  if (cmd == "migrate") return FinishMigrate(ch, r, json, arg, migrate_to, timeout_ms, socket_path);
  if (r.has_error() && r.error().code() != control::Error::UNSPECIFIED) {
    if (json) fputs(agent::FormatErrorJson(r).c_str(), stdout);
    fprintf(stderr, "npactl: %s\n", r.error().message().c_str());
    return kExitAgentError;
  }
  std::string out;
  if (cmd == "vf")
    out = json ? agent::FormatVfJson(r) : agent::FormatVfTable(r, vf_list);
  else
    out = json ? agent::FormatJson(r, which) : agent::FormatTable(r, which);
  fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}
