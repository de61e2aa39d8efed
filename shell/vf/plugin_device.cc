#include "shell/vf/plugin_device.h"

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/state_machine.h"
#include "common/status_macros.h"

namespace npa::shell {

// ---------------------------------------------------------------------------
// PluginDevice: the call order of plugin.h as a table (common/state_machine.h)
// whose events are the kinds of call.

enum class PluginDevice::Op : uint8_t {
  kProbe, kGetCaps, kConfigure, kStart, kRx, kTx, kQueueOp, kQuery, kQuiesce, kStop, kReset,
  kRuntime, kIrq, kRemove, kRss, kCount,
};

namespace {

using O = PluginDevice::Op;
using S = PluginDevice::State;

const char* OpName(PluginDevice::Op op) {
  switch (op) {
    case O::kProbe: return "probe";
    case O::kGetCaps: return "get_caps";
    case O::kConfigure: return "configure";
    case O::kStart: return "start";
    case O::kRx: return "rx_burst";
    case O::kTx: return "tx_burst";
    case O::kQueueOp: return "queue op";
    case O::kQuery: return "link_status/queue_stats";
    case O::kQuiesce: return "quiesce";
    case O::kStop: return "stop";
    case O::kReset: return "reset";
    case O::kRuntime: return "set_mac/set_mtu/vlan_filter";
    case O::kIrq: return "irq_handler";
    case O::kRemove: return "remove";
    case O::kRss: return "rss_set";
    case O::kCount: break;
  }
  return "?";
}

struct PluginDeviceTraits {
  using State = PluginDevice::State;
  using Event = PluginDevice::Op;
  [[maybe_unused]] static constexpr const char* kName = "plug-in device";
  static constexpr size_t kNumStates = static_cast<size_t>(S::kRemoved) + 1;
  static constexpr size_t kNumEvents = static_cast<size_t>(O::kCount);
  static const char* StateName(S s) { return npa::shell::StateName(s); }
  static const char* EventName(O op) { return OpName(op); }
  // Every legal (state, op) pair and where it leads; anything else is out of
  // order.
  static constexpr Arc<S, O> kArcs[] = {
      {S::kIdle, O::kProbe, S::kProbed},
      {S::kProbed, O::kGetCaps, S::kCapsKnown},
      {S::kCapsKnown, O::kGetCaps, S::kCapsKnown},
      {S::kConfigured, O::kGetCaps, S::kConfigured},
      {S::kStopped, O::kGetCaps, S::kStopped},
      // configure needs the caps to check the config against.
      {S::kCapsKnown, O::kConfigure, S::kConfigured},
      {S::kConfigured, O::kConfigure, S::kConfigured},
      {S::kStopped, O::kConfigure, S::kConfigured},
      {S::kConfigured, O::kStart, S::kStarted},
      {S::kStarted, O::kRx, S::kStarted},
      {S::kQuiesced, O::kRx, S::kQuiesced},  // draining RX goes on while quiesced
      {S::kStarted, O::kTx, S::kStarted},
      {S::kStarted, O::kQueueOp, S::kStarted},
      {S::kQuiesced, O::kQueueOp, S::kQuiesced},
      // Counters are read after stop too: the shell's totals must not go backwards.
      {S::kConfigured, O::kQuery, S::kConfigured},
      {S::kStarted, O::kQuery, S::kStarted},
      {S::kQuiesced, O::kQuery, S::kQuiesced},
      {S::kStopped, O::kQuery, S::kStopped},
      {S::kStarted, O::kQuiesce, S::kQuiesced},
      {S::kQuiesced, O::kQuiesce, S::kQuiesced},
      {S::kStarted, O::kStop, S::kStopped},
      {S::kQuiesced, O::kStop, S::kStopped},
      {S::kStopped, O::kReset, S::kStopped},
      {S::kConfigured, O::kRuntime, S::kConfigured},
      {S::kStarted, O::kRuntime, S::kStarted},
      {S::kStopped, O::kRuntime, S::kStopped},
      {S::kProbed, O::kIrq, S::kProbed},
      {S::kCapsKnown, O::kIrq, S::kCapsKnown},
      {S::kConfigured, O::kIrq, S::kConfigured},
      {S::kStarted, O::kIrq, S::kStarted},
      {S::kQuiesced, O::kIrq, S::kQuiesced},
      {S::kStopped, O::kIrq, S::kStopped},
      // rss_set: after configure, and while the queues burst (plugin.h).
      {S::kConfigured, O::kRss, S::kConfigured},
      {S::kStarted, O::kRss, S::kStarted},
      {S::kQuiesced, O::kRss, S::kQuiesced},
      {S::kProbed, O::kRemove, S::kRemoved},
      {S::kCapsKnown, O::kRemove, S::kRemoved},
      {S::kConfigured, O::kRemove, S::kRemoved},
      {S::kStopped, O::kRemove, S::kRemoved},
  };
};
using Table = TransitionTable<PluginDeviceTraits>;

bool PowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

const char* StateName(PluginDevice::State s) {
  switch (s) {
    case S::kIdle: return "not probed";
    case S::kProbed: return "probed";
    case S::kCapsKnown: return "caps known";
    case S::kConfigured: return "configured";
    case S::kStarted: return "started";
    case S::kQuiesced: return "quiesced";
    case S::kStopped: return "stopped";
    case S::kRemoved: return "removed";
  }
  return "?";
}

PluginDevice::PluginDevice(std::shared_ptr<const LoadedPlugin> plugin)
    : plugin_(std::move(plugin)) {}

PluginDevice::~PluginDevice() {
  if (state_ == S::kStarted || state_ == S::kQuiesced) {
    absl::Status s = Stop();
    if (!s.ok()) NPA_LOG(Error, "%s", std::string(s.message()).c_str());
  }
  // remove "never fails" (plugin.h), so it runs even when stop did not succeed:
  // leaking the plug-in's device would be worse.
  if (dev_ != nullptr) plugin_->ctrl().remove(dev_);
}

absl::StatusOr<PluginDevice::State> PluginDevice::Next(Op op) const {
  const std::optional<State> to = Table::Next(state_, op);
  if (!to) {
    // Not Table::IllegalError: plug-in authors read this one, so it names the
    // plug-in and the order to follow (plugin_loader_test asserts the text).
    return absl::FailedPreconditionError(absl::StrCat(
        "plug-in '", plugin_->name(), "': ", OpName(op), " called while the device is ",
        StateName(state_),
        "; the order is probe -> get_caps -> configure -> start -> ... -> stop -> remove "
        "(npa/plugin.h)"));
  }
  return *to;
}

absl::Status PluginDevice::CallStatus(const char* op, int rc) const {
  if (rc == 0) return absl::OkStatus();
  if (rc < 0 && rc > -4096) {
    // ErrnoToStatusCode, not ErrnoToStatus: the latter appends strerror again.
    return absl::Status(absl::ErrnoToStatusCode(-rc),
                        absl::StrCat("plug-in '", plugin_->name(), "': ", op, " failed: ",
                                     strerror(-rc), " (", rc, ")"));
  }
  return absl::InternalError(absl::StrCat("plug-in '", plugin_->name(), "': ", op,
                                          " returned ", rc,
                                          ", which is neither 0 nor a negative errno (plug-in bug)"));
}

namespace {
absl::Status Unimplemented(const LoadedPlugin& p, const char* op) {
  return absl::UnimplementedError(
      absl::StrCat("plug-in '", p.name(), "' does not implement optional op '", op, "'"));
}
}  // namespace

absl::Status PluginDevice::Probe(const npa_services* svc, const npa_device_info& info) {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kProbe));
  if (svc == nullptr || svc->struct_size < sizeof(npa_services) ||
      svc->abi_major != NPA_PLUGIN_ABI_MAJOR) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plug-in '", plugin_->name(),
        "': probe needs a services table of ABI 1 with struct_size >= ", sizeof(npa_services)));
  }
  npa_device_info di = info;
  di.struct_size = sizeof(di);
  di.pci_address[sizeof(di.pci_address) - 1] = '\0';
  npa_plugin_dev* dev = nullptr;
  NPA_RETURN_IF_ERROR(CallStatus("probe", plugin_->ctrl().probe(svc, &di, &dev)));
  if (dev == nullptr) {
    return absl::InternalError(absl::StrCat("plug-in '", plugin_->name(),
                                            "': probe succeeded but returned no device (plug-in bug)"));
  }
  dev_ = dev;
  state_ = next;
  return absl::OkStatus();
}

absl::StatusOr<npa_dev_caps> PluginDevice::GetCaps() {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kGetCaps));
  npa_dev_caps c{};
  c.struct_size = sizeof(c);
  NPA_RETURN_IF_ERROR(CallStatus("get_caps", plugin_->ctrl().get_caps(dev_, &c)));
  c.struct_size = sizeof(c);
  auto bad = [&](const std::string& what) {
    return absl::InternalError(
        absl::StrCat("plug-in '", plugin_->name(), "': get_caps reported ", what, " (plug-in bug)"));
  };
  if (c.max_queue_pairs == 0) return bad("0 queue pairs");
  if (!PowerOfTwo(c.min_ring_size) || !PowerOfTwo(c.max_ring_size) ||
      c.min_ring_size > c.max_ring_size) {
    return bad(absl::StrCat("ring sizes ", c.min_ring_size, "..", c.max_ring_size,
                            ", not an ordered pair of powers of two"));
  }
  const uint64_t allowed = plugin_->capabilities();
  if (c.offloads & ~allowed) {
    NPA_LOG(Warn, "plug-in '%s': get_caps offloads 0x%llx exceed the declared 0x%llx; ignoring "
            "the extra bits", plugin_->name().c_str(), static_cast<unsigned long long>(c.offloads),
            static_cast<unsigned long long>(allowed));
    c.offloads &= allowed;
  }
  caps_ = c;
  state_ = next;
  return c;
}

absl::Status PluginDevice::Configure(const npa_dev_config& cfg_in) {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kConfigure));
  npa_dev_config cfg = cfg_in;
  cfg.struct_size = sizeof(cfg);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("plug-in '", plugin_->name(), "': configure: ", what));
  };
  if (cfg.nb_queue_pairs == 0 || cfg.nb_queue_pairs > caps_.max_queue_pairs) {
    return bad(absl::StrCat(cfg.nb_queue_pairs, " queue pairs asked, the device has 1..",
                            caps_.max_queue_pairs));
  }
  if (!PowerOfTwo(cfg.ring_size) || cfg.ring_size < caps_.min_ring_size ||
      cfg.ring_size > caps_.max_ring_size) {
    return bad(absl::StrCat("ring size ", cfg.ring_size, " is not a power of two in ",
                            caps_.min_ring_size, "..", caps_.max_ring_size));
  }
  if (cfg.offloads & ~caps_.offloads) {
    return bad(absl::StrFormat("offloads 0x%x are not among the device's 0x%x",
                               cfg.offloads & ~caps_.offloads, caps_.offloads));
  }
  if ((cfg.vlan_filter_count != 0 && cfg.vlan_filter == nullptr) ||
      (cfg.rss_key_len != 0 && cfg.rss_key == nullptr)) {
    return bad("a VLAN filter or RSS key length is set without its array");
  }
  NPA_RETURN_IF_ERROR(CallStatus("configure", plugin_->ctrl().configure(dev_, &cfg)));
  nb_queue_pairs_ = cfg.nb_queue_pairs;
  state_ = next;
  return absl::OkStatus();
}

absl::Status PluginDevice::Start() {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kStart));
  NPA_RETURN_IF_ERROR(CallStatus("start", plugin_->ctrl().start(dev_)));
  std::vector<npa_plugin_queue*> queues(nb_queue_pairs_);
  for (uint16_t q = 0; q < nb_queue_pairs_; ++q) {
    queues[q] = plugin_->ctrl().queue(dev_, q);
    if (queues[q] == nullptr) {
      // Leave the device stopped so that no DMA runs behind a failed start.
      absl::Status s = CallStatus("stop", plugin_->ctrl().stop(dev_));
      if (!s.ok()) NPA_LOG(Error, "%s", std::string(s.message()).c_str());
      return absl::InternalError(absl::StrCat("plug-in '", plugin_->name(), "': queue(", q,
                                              ") returned NULL after start (plug-in bug)"));
    }
  }
  queues_ = std::move(queues);
  state_ = next;
  return absl::OkStatus();
}

absl::Status PluginDevice::Quiesce(uint32_t timeout_us) {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kQuiesce));
  if (plugin_->ctrl().quiesce == nullptr) return Unimplemented(*plugin_, "quiesce");
  int rc = plugin_->ctrl().quiesce(dev_, timeout_us);
  // Even "still busy" means it stopped taking TX work: no more tx_burst.
  if (rc == 0 || rc == -EAGAIN) state_ = next;
  return CallStatus("quiesce", rc);
}

absl::Status PluginDevice::Stop() {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kStop));
  NPA_RETURN_IF_ERROR(CallStatus("stop", plugin_->ctrl().stop(dev_)));
  queues_.clear();
  state_ = next;
  return absl::OkStatus();
}

absl::Status PluginDevice::Reset() {
  NPA_RETURN_IF_ERROR(Next(Op::kReset).status());
  if (plugin_->ctrl().reset == nullptr) return Unimplemented(*plugin_, "reset");
  return CallStatus("reset", plugin_->ctrl().reset(dev_));
}

absl::Status PluginDevice::SetMac(const uint8_t mac[6]) {
  NPA_RETURN_IF_ERROR(Next(Op::kRuntime).status());
  if (plugin_->ctrl().set_mac == nullptr) return Unimplemented(*plugin_, "set_mac");
  return CallStatus("set_mac", plugin_->ctrl().set_mac(dev_, mac));
}

absl::Status PluginDevice::SetMtu(uint32_t mtu) {
  NPA_RETURN_IF_ERROR(Next(Op::kRuntime).status());
  if (plugin_->ctrl().set_mtu == nullptr) return Unimplemented(*plugin_, "set_mtu");
  return CallStatus("set_mtu", plugin_->ctrl().set_mtu(dev_, mtu));
}

absl::Status PluginDevice::VlanFilter(uint16_t vid, bool on) {
  NPA_RETURN_IF_ERROR(Next(Op::kRuntime).status());
  if (vid > 4095) {
    return absl::InvalidArgumentError(absl::StrCat("VLAN id ", vid, " is beyond 4095"));
  }
  if (plugin_->ctrl().vlan_filter == nullptr) return Unimplemented(*plugin_, "vlan_filter");
  return CallStatus("vlan_filter", plugin_->ctrl().vlan_filter(dev_, vid, on ? 1 : 0));
}

absl::Status PluginDevice::RssSet(const npa_rss_conf& conf) {
  NPA_RETURN_IF_ERROR(Next(Op::kRss).status());
  if (plugin_->ctrl().rss_set == nullptr) return Unimplemented(*plugin_, "rss_set");
  // The shell's own configuration, checked here once so a plug-in is never
  // handed a conf that breaks plugin.h's promises.
  const bool pow2 = conf.table_len != 0 && (conf.table_len & (conf.table_len - 1)) == 0;
  if (conf.key == nullptr || conf.key_len != NPA_RSS_CONF_KEY_LEN || conf.table == nullptr ||
      !pow2 || conf.table_len > NPA_RSS_CONF_TABLE_MAX || conf.hash_types == 0 ||
      conf.nb_queue_pairs != nb_queue_pairs_)
    return absl::InvalidArgumentError(
        absl::StrCat("rss_set: malformed configuration (key_len ", conf.key_len, ", table_len ",
                     conf.table_len, ", hash_types ", conf.hash_types, ", queue pairs ",
                     conf.nb_queue_pairs, " of ", nb_queue_pairs_, ")"));
  for (uint16_t i = 0; i < conf.table_len; i++)
    if (conf.table[i] >= nb_queue_pairs_)
      return absl::InvalidArgumentError(absl::StrCat("rss_set: table[", i, "] = ", conf.table[i],
                                                     " is not a configured queue"));
  npa_rss_conf c = conf;
  c.struct_size = sizeof(c);
  return CallStatus("rss_set", plugin_->ctrl().rss_set(dev_, &c));
}

absl::Status PluginDevice::HandleIrq(uint32_t vec) {
  NPA_RETURN_IF_ERROR(Next(Op::kIrq).status());
  if (plugin_->ctrl().irq_handler == nullptr) return Unimplemented(*plugin_, "irq_handler");
  return CallStatus("irq_handler", plugin_->ctrl().irq_handler(dev_, vec));
}

absl::StatusOr<npa_link_status> PluginDevice::LinkStatus() {
  NPA_RETURN_IF_ERROR(Next(Op::kQuery).status());
  npa_link_status l{};
  l.struct_size = sizeof(l);
  NPA_RETURN_IF_ERROR(CallStatus("link_status", plugin_->ctrl().link_status(dev_, &l)));
  l.struct_size = sizeof(l);
  return l;
}

absl::StatusOr<npa_plugin_qstats> PluginDevice::QueueStats(uint16_t qid) {
  NPA_RETURN_IF_ERROR(Next(Op::kQuery).status());
  if (qid >= caps_.max_queue_pairs) {
    return absl::OutOfRangeError(absl::StrCat("plug-in '", plugin_->name(), "': queue ", qid,
                                              " beyond the device's ", caps_.max_queue_pairs));
  }
  npa_plugin_qstats s{};
  s.struct_size = sizeof(s);
  NPA_RETURN_IF_ERROR(CallStatus("queue_stats", plugin_->ctrl().queue_stats(dev_, qid, &s)));
  s.struct_size = sizeof(s);
  return s;
}

absl::Status PluginDevice::Remove() {
  NPA_ASSIGN_OR_RETURN(State next, Next(Op::kRemove));
  plugin_->ctrl().remove(dev_);
  dev_ = nullptr;
  state_ = next;
  return absl::OkStatus();
}

absl::StatusOr<npa_plugin_queue*> PluginDevice::QueueFor(Op op, uint16_t qid) const {
  NPA_RETURN_IF_ERROR(Next(op).status());
  if (qid >= queues_.size()) {
    return absl::OutOfRangeError(absl::StrCat("plug-in '", plugin_->name(), "': queue ", qid,
                                              " is not configured (", queues_.size(), " are)"));
  }
  return queues_[qid];
}

namespace {
absl::StatusOr<uint16_t> CheckedCount(const LoadedPlugin& p, const char* op, uint16_t got,
                                      uint16_t n) {
  if (got > n) {
    return absl::InternalError(absl::StrCat("plug-in '", p.name(), "': ", op, " returned ", got,
                                            " for a burst of ", n, " (plug-in bug)"));
  }
  return got;
}
}  // namespace

absl::StatusOr<uint16_t> PluginDevice::RxBurst(uint16_t qid, npa_buf** bufs, uint16_t n) {
  NPA_ASSIGN_OR_RETURN(npa_plugin_queue * q, QueueFor(Op::kRx, qid));
  return CheckedCount(*plugin_, "rx_burst", plugin_->fast().rx_burst(q, bufs, n), n);
}

absl::StatusOr<uint16_t> PluginDevice::TxBurst(uint16_t qid, npa_buf** bufs, uint16_t n) {
  NPA_ASSIGN_OR_RETURN(npa_plugin_queue * q, QueueFor(Op::kTx, qid));
  return CheckedCount(*plugin_, "tx_burst", plugin_->fast().tx_burst(q, bufs, n), n);
}

absl::StatusOr<uint16_t> PluginDevice::TxReap(uint16_t qid) {
  NPA_ASSIGN_OR_RETURN(npa_plugin_queue * q, QueueFor(Op::kQueueOp, qid));
  if (plugin_->fast().tx_reap == nullptr) return Unimplemented(*plugin_, "tx_reap");
  return plugin_->fast().tx_reap(q);
}

absl::Status PluginDevice::RxIntrEnable(uint16_t qid, bool enable) {
  NPA_ASSIGN_OR_RETURN(npa_plugin_queue * q, QueueFor(Op::kQueueOp, qid));
  if (plugin_->fast().rx_intr_enable == nullptr) return Unimplemented(*plugin_, "rx_intr_enable");
  return CallStatus("rx_intr_enable", plugin_->fast().rx_intr_enable(q, enable ? 1 : 0));
}

absl::StatusOr<int> PluginDevice::IrqVector(uint16_t qid) {
  NPA_ASSIGN_OR_RETURN(npa_plugin_queue * q, QueueFor(Op::kQueueOp, qid));
  if (plugin_->fast().get_irq_vector == nullptr) return Unimplemented(*plugin_, "get_irq_vector");
  int v = plugin_->fast().get_irq_vector(q);
  if (v < 0) {
    NPA_RETURN_IF_ERROR(CallStatus("get_irq_vector", v));
  }
  return v;
}

}  // namespace npa::shell
