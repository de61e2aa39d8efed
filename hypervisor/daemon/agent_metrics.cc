#include "hypervisor/daemon/agent_metrics.h"

#include <arpa/inet.h>

#include <exception>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/vf/vf_lifecycle.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace npa::agent {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

// Durations from a millisecond to a minute: a switch or revoke on a real VF
// takes 1-300 ms (docs/vfio-lab.md), a forced one up to the grace (3 s), a
// migration a few seconds.
const prometheus::Histogram::BucketBoundaries kSwitchBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const prometheus::Histogram::BucketBoundaries kMigrationBuckets = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

MetricFamily Family(const char* name, const char* help) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = MetricType::Counter;
  return f;
}

void AddSample(MetricFamily& f, uint64_t v, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(v);
  f.metric.push_back(std::move(m));
}

}  // namespace

absl::Status ParseMetricsListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", listen, "' needs ADDR:PORT with a numeric IPv4 address (a bare port "
        "would listen on every interface)"));
  const std::string host = listen.substr(0, colon);
  in_addr a;
  if (inet_pton(AF_INET, host.c_str(), &a) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", listen, "': '", host, "' is not a numeric IPv4 address"));
  uint32_t port;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", listen, "': the port must be 0..65535"));
  return absl::OkStatus();
}

// Reads the guests' queue counters and the dataplane's own at scrape time,
// at most once per sample period (see the header).
class AgentMetrics::GuestCollector final : public prometheus::Collectable {
 public:
  GuestCollector(const Dataplane* dp, uint32_t sample_ms)
      : dp_(dp), sample_ns_(uint64_t{sample_ms} * 1000000) {}

  std::vector<MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> l(mu_);
    const uint64_t now = MonotonicNs();
    if (have_ && now - sampled_ns_ < sample_ns_) return cache_;
    cache_ = Sample();
    sampled_ns_ = now;
    have_ = true;
    return cache_;
  }

  void SetName(uint64_t id, std::string name) {
    std::lock_guard<std::mutex> l(mu_);
    names_[id] = std::move(name);
    have_ = false;  // the next scrape relabels
  }
  void Forget(uint64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    names_.erase(id);
  }

 private:
  // Under mu_.
  std::vector<MetricFamily> Sample() const {
    std::vector<MetricFamily> out;
    if (dp_ == nullptr) return out;
    MetricFamily fams[] = {
        Family("npa_guest_rx_packets_total", "Frames the agent put into the guest's RX ring."),
        Family("npa_guest_rx_bytes_total", "Bytes of those frames (virtio-net header excluded)."),
        Family("npa_guest_rx_dropped_total",
               "Frames for the guest that found no room in its RX ring."),
        Family("npa_guest_tx_packets_total", "Frames the agent took from the guest's TX ring."),
        Family("npa_guest_tx_bytes_total", "Bytes of those frames (virtio-net header excluded)."),
        Family("npa_guest_tx_dropped_total",
               "Frames from the guest's TX ring the agent refused (malformed chains)."),
    };
    for (const Dataplane::GuestView& g : dp_->Guests()) {
      auto it = names_.find(g.id);
      const std::string guest = it != names_.end() ? it->second : absl::StrCat("guest", g.id);
      const uint16_t nq = g.port->num_queue_pairs();
      for (uint16_t q = 0; q < nq; q++) {
        const QueueCounters c = g.port->counters(q);
        const std::vector<ClientMetric::Label> labels = {{"guest", guest},
                                                         {"queue", std::to_string(q)}};
        AddSample(fams[0], c.rx_packets, labels);
        AddSample(fams[1], c.rx_bytes, labels);
        AddSample(fams[2], c.rx_dropped, labels);
        AddSample(fams[3], c.tx_packets, labels);
        AddSample(fams[4], c.tx_bytes, labels);
        AddSample(fams[5], c.tx_dropped, labels);
      }
    }
    for (MetricFamily& f : fams) out.push_back(std::move(f));
    const DataplaneCounters d = dp_->counters();
    const struct {
      const char* name;
      const char* help;
      uint64_t v;
    } dpc[] = {
        {"npa_dataplane_loops_total", "Polling loops of the dataplane thread.", d.loops},
        {"npa_dataplane_sleeps_total", "Times the dataplane thread went idle (epoll_wait).",
         d.sleeps},
        {"npa_dataplane_coalesced_waits_total",
         "Interrupt-moderation intervals the dataplane thread waited (--coalesce-us).",
         d.coalesced_waits},
        {"npa_dataplane_sink_packets_total", "Frames consumed in --mode sink.", d.sink_packets},
        {"npa_dataplane_sink_bytes_total", "Bytes consumed in --mode sink.", d.sink_bytes},
        {"npa_dataplane_flood_copies_total", "Deliveries made because of floods.", d.flood_copies},
        {"npa_dataplane_delivery_drops_total",
         "Frames a destination (guest RX or uplink) did not take.", d.delivery_drops},
        {"npa_dataplane_flooded_to_nobody_total",
         "Frames flooded while no other port could take a copy (lost).", d.flooded_to_nobody},
        {"npa_dataplane_held_total", "Frames kept for a MAC held by a migration.", d.held},
        {"npa_dataplane_held_dropped_total", "Frames for a held MAC over its bounds.",
         d.held_dropped},
        {"npa_dataplane_injected_total", "Held frames delivered after a migration.", d.injected},
        {"npa_dataplane_inject_failed_total", "Held frames that could not be delivered.",
         d.inject_failed},
        {"npa_dataplane_uplink_control_total", "Announcements (RARP) sent on the uplink.",
         d.uplink_control},
        {"npa_dataplane_budget_yields_total",
         "Polls that left a guest's work for the next round (fairness budget).", d.budget_yields},
    };
    for (const auto& c : dpc) {
      MetricFamily f = Family(c.name, c.help);
      AddSample(f, c.v, {});
      out.push_back(std::move(f));
    }
    return out;
  }

  const Dataplane* const dp_;
  const uint64_t sample_ns_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::string> names_;          // under mu_
  mutable bool have_ = false;                      // under mu_
  mutable uint64_t sampled_ns_ = 0;                // under mu_
  mutable std::vector<MetricFamily> cache_;        // under mu_
};

AgentMetrics::AgentMetrics(const Dataplane* dp, Options opts)
    : opts_(opts),
      registry_(std::make_shared<prometheus::Registry>()),
      guests_(std::make_shared<GuestCollector>(dp, opts.guest_sample_ms)) {
  switch_hist_ = &prometheus::BuildHistogram()
                      .Name("npa_switch_duration_seconds")
                      .Help("A guest's switch to its VF: from the VF offer until the guest "
                            "runs on it.")
                      .Register(*registry_)
                      .Add({}, kSwitchBuckets);
  revoke_hist_ = &prometheus::BuildHistogram()
                      .Name("npa_revoke_duration_seconds")
                      .Help("A revoke: from its start (Revoke sent or VFIO REQ raised) until "
                            "the guest is off the VF.")
                      .Register(*registry_)
                      .Add({}, kSwitchBuckets);
  migration_family_ = &prometheus::BuildHistogram()
                           .Name("npa_migration_duration_seconds")
                           .Help("This agent's side of a migration, by role (source, "
                                 "destination).")
                           .Register(*registry_);
  vf_resets_ = &prometheus::BuildCounter()
                    .Name("npa_vf_resets_total")
                    .Help("Resets of the VF (VFIO_DEVICE_RESET).")
                    .Register(*registry_);
  vf_attaches_ = &prometheus::BuildCounter()
                      .Name("npa_vf_attaches_total")
                      .Help("Times the VF was offered to a guest.")
                      .Register(*registry_);
  vf_state_ = &prometheus::BuildGauge()
                   .Name("npa_vf_state")
                   .Help("1 for the VF's current pool state, 0 for the others.")
                   .Register(*registry_);
}

AgentMetrics::~AgentMetrics() {
  exposer_.reset();  // no scrape runs past this point
}

absl::Status AgentMetrics::Serve(const std::string& listen) {
  if (exposer_) return absl::FailedPreconditionError("metrics: already serving");
  if (absl::Status s = ParseMetricsListen(listen); !s.ok()) return s;
  if (opts_.threads < 1 || opts_.threads > 8)
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: ", opts_.threads, " HTTP threads (want 1..8)"));
  // CivetWeb's own options (civetweb.h's documentation): one listening
  // socket on exactly that address, a fixed worker pool, no keep-alive (a
  // client cannot park on a worker between requests) and a request deadline.
  std::vector<std::string> civet = {"listening_ports",    listen,
                                    "num_threads",        std::to_string(opts_.threads),
                                    "enable_keep_alive",  "no",
                                    "request_timeout_ms", "5000"};
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(std::move(civet));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", listen, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(guests_);
  NPA_LOG(Info, "metrics: serving /metrics on %s (port %d, %zu threads)", listen.c_str(), port(),
          opts_.threads);
  return absl::OkStatus();
}

int AgentMetrics::port() const {
  if (!exposer_) return 0;
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void AgentMetrics::ObserveSwitch(double seconds) { switch_hist_->Observe(seconds); }
void AgentMetrics::ObserveRevoke(double seconds) { revoke_hist_->Observe(seconds); }
void AgentMetrics::ObserveMigration(std::string_view role, double seconds) {
  migration_family_->Add({{"role", std::string(role)}}, kMigrationBuckets).Observe(seconds);
}

void AgentMetrics::CountVfAttach(std::string_view bdf) {
  vf_attaches_->Add({{"vf", std::string(bdf)}}).Increment();
}
void AgentMetrics::CountVfReset(std::string_view bdf) {
  vf_resets_->Add({{"vf", std::string(bdf)}}).Increment();
}

void AgentMetrics::SetVfStates(const std::vector<VfMetricsSample>& vfs) {
  std::lock_guard<std::mutex> l(vf_mu_);
  std::map<std::string, std::vector<prometheus::Gauge*>> next;
  for (const VfMetricsSample& v : vfs) {
    std::vector<prometheus::Gauge*> gauges;
    auto old = vf_gauges_.find(v.bdf);
    if (old != vf_gauges_.end()) {
      gauges = std::move(old->second);
      vf_gauges_.erase(old);
    } else {
      for (size_t s = 0; s < kNumVfStates; s++)
        gauges.push_back(&vf_state_->Add(
            {{"vf", v.bdf}, {"state", VfStateName(static_cast<VfState>(s))}}));
    }
    for (size_t s = 0; s < kNumVfStates; s++)
      gauges[s]->Set(v.state == VfStateName(static_cast<VfState>(s)) ? 1 : 0);
    next[v.bdf] = std::move(gauges);
  }
  for (auto& [bdf, gauges] : vf_gauges_)  // no longer in the pool
    for (prometheus::Gauge* g : gauges) vf_state_->Remove(g);
  vf_gauges_ = std::move(next);
}

void AgentMetrics::SetGuestName(uint64_t id, std::string name) {
  guests_->SetName(id, std::move(name));
}
void AgentMetrics::ForgetGuest(uint64_t id) { guests_->Forget(id); }

void AgentMetrics::OnEvent(const AgentEvent& e) {
  switch (e.kind) {
    case EventKind::kGuestUp:
    case EventKind::kMigrationIn:
      if (e.guest_id != 0 && !e.guest.empty()) SetGuestName(e.guest_id, e.guest);
      if (e.kind == EventKind::kMigrationIn && e.duration_ns)
        ObserveMigration("destination", static_cast<double>(e.duration_ns) / 1e9);
      break;
    case EventKind::kGuestDown: {
      ForgetGuest(e.guest_id);
      std::lock_guard<std::mutex> l(switch_mu_);
      switch_start_ns_.erase(e.guest_id);
      break;
    }
    case EventKind::kVfAttach: {
      if (!e.vf.empty()) CountVfAttach(e.vf);
      std::lock_guard<std::mutex> l(switch_mu_);
      switch_start_ns_[e.guest_id] = e.mono_ns;
      break;
    }
    case EventKind::kVfAccept: {
      uint64_t start = 0;
      {
        std::lock_guard<std::mutex> l(switch_mu_);
        auto it = switch_start_ns_.find(e.guest_id);
        if (it == switch_start_ns_.end()) break;
        start = it->second;
        switch_start_ns_.erase(it);
      }
      if (e.mono_ns >= start) ObserveSwitch(static_cast<double>(e.mono_ns - start) / 1e9);
      break;
    }
    case EventKind::kRevokeDone:
      ObserveRevoke(static_cast<double>(e.duration_ns) / 1e9);
      break;
    case EventKind::kVfReset:
      if (!e.vf.empty()) CountVfReset(e.vf);
      break;
    case EventKind::kMigrationOut:
      if (e.duration_ns) ObserveMigration("source", static_cast<double>(e.duration_ns) / 1e9);
      break;
    case EventKind::kRevokeBegin:
    case EventKind::kFallback:
    case EventKind::kVfReleased:
      break;
  }
}

std::string AgentMetrics::Scrape() const {
  std::vector<MetricFamily> all = registry_->Collect();
  std::vector<MetricFamily> g = guests_->Collect();
  all.insert(all.end(), std::make_move_iterator(g.begin()), std::make_move_iterator(g.end()));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, all);
  return out.str();
}

}  // namespace npa::agent
