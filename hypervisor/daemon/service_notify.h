// hypervisor/daemon/service_notify.h — npa-agent as a systemd service of
// Type=notify with a watchdog (sd_notify(3), sd_watchdog_enabled(3)).
//
//   ServiceNotifier n = ServiceNotifier::FromEnvironment();
//   ... bind every listener ...
//   n.Ready("serving 0 guests");                 // READY=1 + STATUS=
//   while (!stop) {
//     srv.RunOnce(200);
//     n.Tick(npa::MonotonicNs(), dp.loops());   // WATCHDOG=1 when due
//   }
//   n.Stopping();                                // STOPPING=1
//
// READY=1 is sent only once the control, admin, vhost-user and migration
// sockets are bound, so a unit ordered After=npa-agent.service finds them.
// The watchdog pings (every WatchdogSec/2) only while BOTH the control loop
// (which calls Tick) and the dataplane thread (whose loop counter must have
// moved since the last ping; it wakes at least every idle_sleep_ms) make
// progress: a wedged dataplane stops the pings and systemd restarts the
// agent, whose restart roster brings the guests back (docs/security.md).
//
// Not under systemd (no NOTIFY_SOCKET): every call does nothing.
// Threads: the control thread only. Errors from sd_notify are logged once
// and otherwise ignored: a supervisor that stopped listening must not stop
// the agent.
#ifndef NPA_HYPERVISOR_DAEMON_SERVICE_NOTIFY_H_
#define NPA_HYPERVISOR_DAEMON_SERVICE_NOTIFY_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace npa::agent {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (through libsystemd).
  static ServiceNotifier FromEnvironment();
  ServiceNotifier() = default;

  bool enabled() const { return enabled_; }
  // 0: no watchdog configured (or WATCHDOG_PID names another process).
  uint64_t watchdog_usec() const { return watchdog_usec_; }

  void Ready(std::string_view status);
  void Status(std::string_view status);
  // Sends WATCHDOG=1 if half the watchdog period passed since the last ping
  // and dataplane_loops moved since then. Returns true if it pinged.
  bool Tick(uint64_t now_ns, uint64_t dataplane_loops);
  void Stopping(std::string_view status);

  uint64_t pings() const { return pings_; }
  uint64_t withheld() const { return withheld_; }  // due, but the dataplane stood still

 private:
  void Send(const std::string& msg);

  bool enabled_ = false;
  uint64_t watchdog_usec_ = 0;
  uint64_t last_ping_ns_ = 0;
  uint64_t last_loops_ = 0;
  bool have_loops_ = false;
  bool stalled_ = false;
  uint64_t pings_ = 0;
  uint64_t withheld_ = 0;
  bool send_failed_logged_ = false;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_SERVICE_NOTIFY_H_
