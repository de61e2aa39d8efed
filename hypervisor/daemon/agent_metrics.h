// hypervisor/daemon/agent_metrics.h — npa-agent's Prometheus metrics
// (npa-agent --metrics-listen ADDR:PORT; docs/operator-guide.md "Metrics"),
// served by prometheus-cpp's pull Exposer (CivetWeb) at /metrics.
//
//   AgentMetrics m(&dataplane);                       // dataplane may be null
//   NPA_RETURN_IF_ERROR(m.Serve("127.0.0.1:9464"));   // off unless called
//   m.SetGuestName(7, "vm1");                         // guest_up (control thread)
//   m.SetVfStates({{"0000:03:00.2", "ACTIVE"}});       // control thread, now and then
//   m.CountVfAttach("0000:03:00.2");
//   m.ObserveRevoke(0.012);                           // seconds
//   events.AddListener([&m](const AgentEvent& e) { m.OnEvent(e); });  // or all from events
//   std::string text = m.Scrape();                    // what /metrics serves (tests)
//
// What is exported (names, labels and meaning in docs/operator-guide.md):
//   npa_guest_{rx,tx}_{packets,bytes,dropped}_total{guest,queue}
//       the guest's own virtqueue counters (VhostDevice::counters through
//       GuestPort), read at scrape time, at most once per guest_sample_ms;
//   npa_dataplane_*_total   the dataplane's counters (relaxed loads);
//   npa_vf_state{vf,state}  1 for the VF's current state, 0 for the others;
//   npa_vf_resets_total{vf}, npa_vf_attaches_total{vf};
//   npa_switch_duration_seconds, npa_revoke_duration_seconds,
//   npa_migration_duration_seconds{role} (histograms).
//
// The scrape cannot slow the dataplane: the guest set is the dataplane's
// published snapshot (Dataplane::Guests(), one mutex the dataplane thread
// takes only when guests come and go), and each queue's counters are a copy
// taken under the device's mutex, which the dataplane holds once per burst,
// never per frame; the copies are cached for guest_sample_ms, so however
// often /metrics is fetched, a device is read at most that often. Nothing is
// added to the frame path.
//
// The HTTP server: CivetWeb through the Exposer, bound only to the given
// numeric IPv4 address and port (ParseMetricsListen refuses a bare port,
// which would bind every interface), with `threads` worker threads (1..8),
// keep-alive off and a 5 s request timeout, so a stuck client holds one
// worker for 5 s at most and never more than `threads` at once.
//
// Threads: every method is thread-safe. Observe*, Count*, SetGuestName and
// ForgetGuest take a short mutex; the Exposer's workers call Collect.
// Ownership: the dataplane must outlive this object; the destructor stops
// the HTTP server first.
#ifndef NPA_HYPERVISOR_DAEMON_AGENT_METRICS_H_
#define NPA_HYPERVISOR_DAEMON_AGENT_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hypervisor/daemon/agent_events.h"
#include "hypervisor/daemon/dataplane.h"

namespace prometheus {
class Exposer;
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace npa::agent {

// "A.B.C.D:PORT" with a numeric IPv4 address and PORT 0..65535 (0: any free
// port, for tests). Errors name what is wrong.
absl::Status ParseMetricsListen(const std::string& listen);

// One VF as the pool reports it (VfManager::List()).
struct VfMetricsSample {
  std::string bdf;
  std::string state;  // VfStateName, e.g. "ACTIVE"
};

class AgentMetrics {
 public:
  struct Options {
    size_t threads = 2;              // HTTP worker threads, 1..8
    uint32_t guest_sample_ms = 200;  // guest counters read at most this often
  };
  explicit AgentMetrics(const Dataplane* dp) : AgentMetrics(dp, Options{}) {}
  AgentMetrics(const Dataplane* dp, Options opts);
  ~AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // Starts the HTTP server on listen (ParseMetricsListen). Errors: the
  // address, or CivetWeb's bind failure naming it.
  absl::Status Serve(const std::string& listen);
  // The port the server listens on (0: not serving).
  int port() const;

  // Histograms, in seconds. Switch: a VF offered until the guest runs on it
  // (emulated -> VF). Revoke: a revoke begun until the guest is off the VF.
  // Migration: one agent's side of a move, role "source" or "destination".
  void ObserveSwitch(double seconds);
  void ObserveRevoke(double seconds);
  void ObserveMigration(std::string_view role, double seconds);

  // VF counters and states (labels vf=PCI address).
  void CountVfAttach(std::string_view bdf);
  void CountVfReset(std::string_view bdf);
  // The pool's states now: every VF listed gets npa_vf_state; a VF no longer
  // listed keeps its counters and loses its state series.
  void SetVfStates(const std::vector<VfMetricsSample>& vfs);

  // The guest label for a dataplane port (guest id); unnamed guests are
  // labelled "guest<ID>".
  void SetGuestName(uint64_t id, std::string name);
  void ForgetGuest(uint64_t id);

  // Feeds all of the above from the agent's lifecycle events
  // (agent_events.h), as an AgentEvents listener (short; never blocks):
  //   guest_up / guest_down   SetGuestName / ForgetGuest
  //   vf_attach               CountVfAttach, and the switch starts
  //   vf_accept               ObserveSwitch(since that guest's vf_attach)
  //   revoke_done             ObserveRevoke(duration)
  //   vf_reset                CountVfReset
  //   migration_out / _in     ObserveMigration("source" / "destination")
  void OnEvent(const AgentEvent& e);

  // The text exposition /metrics serves now.
  std::string Scrape() const;

 private:
  class GuestCollector;
  prometheus::Family<prometheus::Counter>& CounterFamily(const char* name, const char* help);

  const Options opts_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<GuestCollector> guests_;
  prometheus::Histogram* switch_hist_ = nullptr;
  prometheus::Histogram* revoke_hist_ = nullptr;
  prometheus::Family<prometheus::Histogram>* migration_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* vf_resets_ = nullptr;
  prometheus::Family<prometheus::Counter>* vf_attaches_ = nullptr;
  prometheus::Family<prometheus::Gauge>* vf_state_ = nullptr;
  mutable std::mutex vf_mu_;
  std::map<std::string, std::vector<prometheus::Gauge*>> vf_gauges_;  // under vf_mu_
  std::mutex switch_mu_;
  std::map<uint64_t, uint64_t> switch_start_ns_;  // guest id -> vf_attach time; under switch_mu_
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_AGENT_METRICS_H_
