#include "hypervisor/daemon/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace npa::agent {

ServiceNotifier ServiceNotifier::FromEnvironment() {
  ServiceNotifier n;
  const char* sock = std::getenv("NOTIFY_SOCKET");
  n.enabled_ = sock != nullptr && sock[0] != '\0';
  uint64_t usec = 0;
  // > 0 only if WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us.
  if (n.enabled_ && sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) n.watchdog_usec_ = usec;
  return n;
}

void ServiceNotifier::Send(const std::string& msg) {
  if (!enabled_) return;
  const int r = sd_notify(/*unset_environment=*/0, msg.c_str());
  if (r <= 0 && !send_failed_logged_) {
    send_failed_logged_ = true;
    NPA_LOG(Warn, "service: sd_notify(%s) failed: %s", msg.substr(0, msg.find('\n')).c_str(),
            r < 0 ? std::strerror(-r) : "no NOTIFY_SOCKET");
  }
}

void ServiceNotifier::Ready(std::string_view status) {
  if (!enabled_) return;
  Send("READY=1\nSTATUS=" + std::string(status));
  const std::string wd = watchdog_usec_ ? std::to_string(watchdog_usec_ / 1000) + " ms" : "off";
  NPA_LOG(Info, "service: READY sent to the service manager (watchdog %s)", wd.c_str());
}

void ServiceNotifier::Status(std::string_view status) { Send("STATUS=" + std::string(status)); }

bool ServiceNotifier::Tick(uint64_t now_ns, uint64_t dataplane_loops) {
  if (!enabled_ || watchdog_usec_ == 0) return false;
  // The first call only takes the reference (and pings: the service manager
  // counts from READY); later ones ping every half period (systemd's own
  // advice, sd_watchdog_enabled(3)) and only if the dataplane moved.
  if (have_loops_) {
    if (now_ns - last_ping_ns_ < watchdog_usec_ * 1000 / 2) return false;
    if (dataplane_loops == last_loops_) {
      ++withheld_;
      if (!stalled_) {  // once per stall
        stalled_ = true;
        NPA_LOG(Error, "service: the dataplane made no progress for %llu ms; withholding the "
                       "watchdog ping",
                static_cast<unsigned long long>((now_ns - last_ping_ns_) / 1000000));
      }
      return false;
    }
    if (stalled_) {
      stalled_ = false;
      NPA_LOG(Info, "service: the dataplane moves again; watchdog pings resume");
    }
  }
  have_loops_ = true;
  last_loops_ = dataplane_loops;
  last_ping_ns_ = now_ns;
  Send("WATCHDOG=1");
  ++pings_;
  return true;
}

void ServiceNotifier::Stopping(std::string_view status) {
  Send("STOPPING=1\nSTATUS=" + std::string(status));
}

}  // namespace npa::agent
