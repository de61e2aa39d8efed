// npa-agent: the host agent daemon. See --help and docs/operator-guide.md.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/daemon/agent_options.h"
#include "hypervisor/daemon/agent_metrics.h"
#include "hypervisor/daemon/control_server.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/migrations.h"
#include "hypervisor/daemon/service_notify.h"
#include "hypervisor/daemon/tap_uplink.h"
#include "hypervisor/migration/migration_channel.h"
#include "hypervisor/vf/sysfs.h"
#include "hypervisor/vf/vf_lifecycle.h"
#include "hypervisor/vf/vf_manager.h"
#include "hypervisor/vf/vfio_layer.h"

namespace {

constexpr const char* kVersion = NPA_VERSION;  // the project version (CMakeLists.txt)

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  using namespace npa::agent;
  AgentOptions o;
  absl::StatusOr<AgentArgs> parsed = ParseAgentArgs({argv + 1, argv + argc}, &o);
  if (!parsed.ok()) {
    fprintf(stderr, "npa-agent: %s\nTry 'npa-agent --help'.\n",
            std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (*parsed == AgentArgs::kHelp) {
    fputs(kAgentUsage, stdout);
    return 0;
  }
  if (*parsed == AgentArgs::kVersion) {
    printf("npa-agent %s\n", kVersion);
    return 0;
  }
  if (o.log_level) npa::SetLogLevel(*o.log_level);
  if (o.log_format) npa::SetLogFormat(*o.log_format);
  ControlServer::Options& copt = o.control;
  Dataplane::Options& dopt = o.dataplane;
  VfManager::Options& vopt = o.vfs;
  if (o.tls_configured()) copt.migration_connector = TlsPeerConnector(o.tls);
  npa::LogInit("npa-agent");

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (!o.control_given) {
    // The default lives under /run/npa, which may not exist yet.
    if (mkdir("/run/npa", 0755) < 0 && errno != EEXIST)
      NPA_LOG(Warn, "mkdir /run/npa: %s", strerror(errno));
  }

  std::unique_ptr<TapUplink> uplink;
  if (!o.tap.empty()) {
    TapUplink::Options topt;
    topt.name = o.tap;
    topt.mtu = copt.mtu;
    topt.persist = o.tap_persist;
    auto up = TapUplink::Create(topt);
    if (!up.ok()) {
      NPA_LOG(Error, "create TAP uplink %s: %s", o.tap.c_str(),
              std::string(up.status().message()).c_str());
      return 1;
    }
    uplink = std::move(*up);
  }
  Dataplane dp(dopt, uplink.get());
  if (absl::Status s = dp.Start(); !s.ok()) {
    NPA_LOG(Error, "start dataplane: %s", std::string(s.message()).c_str());
    return 1;
  }
  npa::agent::vf::SysfsRoot sysfs;
  RealVfioLayer vfio(sysfs);
  std::unique_ptr<VfManager> vfs;
  if (!vopt.pool.empty()) {
    vfs = std::make_unique<VfManager>(sysfs, vfio, vopt);
    if (absl::Status s = vfs->Init(); !s.ok()) {
      NPA_LOG(Error, "VF pool: %s", std::string(s.message()).c_str());
      dp.Stop();
      return 1;
    }
    copt.vfs = vfs.get();
  }
  // Control-socket guests always get require_sealed_memory (control_server.cc);
  // the flag extends it to the plain vhost-user listeners' back ends.
  PortFactory ports = VhostPortFactory();
  if (o.require_sealed) {
    ports = [inner = std::move(ports)](npa::UniqueFd conn, const VhostDevice::Options& o) {
      VhostDevice::Options sealed = o;
      sealed.require_sealed_memory = true;
      return inner(std::move(conn), sealed);
    };
  }
  // Declared before the control server, so it outlives the server's event
  // publisher that feeds it.
  std::unique_ptr<AgentMetrics> metrics;
  ControlServer srv(copt, &dp, std::move(ports));
  if (absl::Status s = srv.Listen(); !s.ok()) {
    NPA_LOG(Error, "%s", std::string(s.message()).c_str());
    dp.Stop();
    return 1;
  }
  std::unique_ptr<npa::migration::MigrationListener> listener;
  if (!o.migration_listen.empty()) {
    auto l = npa::migration::MigrationListener::Start(o.migration_listen, o.tls, &srv.migrations(),
                                                          srv.migrations().listener_options());
    if (!l.ok()) {
      NPA_LOG(Error, "migration listener on %s: %s", o.migration_listen.c_str(),
              std::string(l.status().message()).c_str());
      srv.Shutdown("agent failed to start");
      dp.Stop();
      return 1;
    }
    listener = std::move(*l);
    srv.migrations().set_send_done([&listener](uint64_t id, bool resumed, const std::string& why) {
      return listener->SendDone(id, resumed, why);
    });
    NPA_LOG(Info, "migration listener on %s (mutual TLS, CA %s)", o.migration_listen.c_str(),
            o.tls.ca_file.c_str());
  }
  if (!o.metrics_listen.empty()) {
    metrics = std::make_unique<AgentMetrics>(&dp);
    if (absl::Status s = metrics->Serve(o.metrics_listen); !s.ok()) {
      NPA_LOG(Error, "%s", std::string(s.message()).c_str());
      if (listener) listener->Stop();
      srv.Shutdown("agent failed to start");
      dp.Stop();
      return 1;
    }
    srv.events().AddListener([m = metrics.get()](const AgentEvent& e) { m->OnEvent(e); });
  }
  // The VF pool's states for the metrics: copied on this thread (VfManager
  // is single-threaded) about once a second.
  uint64_t vf_states_ms = 0;
  auto copy_vf_states = [&] {
    if (!metrics || !vfs || npa::MonotonicMs() - vf_states_ms < 1000) return;
    vf_states_ms = npa::MonotonicMs();
    std::vector<VfMetricsSample> states;
    for (const VfPoolEntry& e : vopt.pool) {
      if (std::optional<VfState> st = vfs->StateOf(e.bdf)) states.push_back({e.bdf, VfStateName(*st)});
    }
    metrics->SetVfStates(states);
  };
  copy_vf_states();
  NPA_LOG(Info, "npa-agent %s '%s' ready (mode %s, mtu %u, uplink %s)", kVersion,
          copt.agent_name.c_str(), DataplaneModeName(dopt.mode), copt.mtu,
          uplink ? uplink->name().c_str() : "none");
  // Under systemd (Type=notify): READY=1 now that every socket is bound,
  // then the watchdog from this loop (service_notify.h).
  ServiceNotifier service = ServiceNotifier::FromEnvironment();
  auto status_line = [&] {
    return absl::StrFormat("'%s' serving %u guests (mode %s)", copt.agent_name, srv.num_guests(),
                           DataplaneModeName(dopt.mode));
  };
  service.Ready(status_line());
  size_t shown_guests = srv.num_guests();
  int rc = 0;
  while (!g_stop.load()) {
    if (absl::Status s = srv.RunOnce(200); !s.ok()) {
      NPA_LOG(Error, "control loop: %s", std::string(s.message()).c_str());
      rc = 1;
      break;
    }
    copy_vf_states();
    if (service.enabled()) {
      service.Tick(npa::MonotonicNs(), dp.loops());
      if (srv.num_guests() != shown_guests) {
        shown_guests = srv.num_guests();
        service.Status(status_line());
      }
    }
  }
  NPA_LOG(Info, "shutting down");
  service.Stopping(rc == 0 ? "shutting down" : "control loop failed");
  // A planned stop loses nothing: the dataplane stops first, after the loop
  // it is in, so every frame it took from a TX ring was delivered and both
  // used indices are published; nothing is read from a ring after that.
  // Then the sessions close (Bye) and each shell resumes its rings on the
  // next agent at those indices (shell/reconnect.h).
  if (listener) listener->Stop();
  dp.Stop();
  srv.Shutdown("agent shutting down");
  return rc;
}
