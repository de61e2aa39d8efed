// shell/vf/plugin_device.h — the only way the shell calls into a plug-in.
//
//   PluginDevice dev(std::shared_ptr<const LoadedPlugin>(std::move(plugin)));
//   NPA_RETURN_IF_ERROR(dev.Probe(&services, device_info));
//   NPA_ASSIGN_OR_RETURN(npa_dev_caps caps, dev.GetCaps());
//   NPA_RETURN_IF_ERROR(dev.Configure(cfg));
//   NPA_RETURN_IF_ERROR(dev.Start());
//   NPA_ASSIGN_OR_RETURN(uint16_t got, dev.RxBurst(0, bufs, 32));
//   NPA_RETURN_IF_ERROR(dev.Stop());
//   NPA_RETURN_IF_ERROR(dev.Remove());
//
// The wrapper enforces the call order of npa/plugin.h as a transition table
// whose events are the kinds of call (plugin_device.cc, PluginDeviceTraits
// on common/state_machine.h) and converts the plug-in's negative errno
// returns into absl::Status. The services table passed to Probe is built by
// the VF path; this class only checks it and hands it on.
//
// Threading: control calls from one thread at a time; burst calls for a queue
// from its owning thread, never racing Stop() (npa/plugin.h).
#ifndef NPA_SHELL_VF_PLUGIN_DEVICE_H_
#define NPA_SHELL_VF_PLUGIN_DEVICE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "npa/plugin.h"
#include "shell/vf/plugin_loader.h"

namespace npa::shell {

// One device driven by one plug-in. The calls follow plugin.h:
//
//   Probe -> GetCaps -> Configure -> Start -> { bursts, stats, link }
//         -> [Quiesce] -> Stop -> (Configure -> Start ...)* -> Remove
//
// with Reset allowed while stopped. A call out of order fails with
// FAILED_PRECONDITION before it reaches the plug-in. A plug-in's negative
// errno becomes absl::ErrnoToStatus with "plug-in '<name>': <op> failed" in
// the message; a call that fails leaves the state unchanged. Optional ops the
// plug-in lacks fail with UNIMPLEMENTED. The destructor stops and removes the
// device if the caller did not.
class PluginDevice {
 public:
  enum class State : uint8_t {
    kIdle,        // not probed
    kProbed,
    kCapsKnown,
    kConfigured,
    kStarted,
    kQuiesced,    // started, no new TX taken
    kStopped,
    kRemoved,
  };

  explicit PluginDevice(std::shared_ptr<const LoadedPlugin> plugin);
  PluginDevice(const PluginDevice&) = delete;
  PluginDevice& operator=(const PluginDevice&) = delete;
  ~PluginDevice();

  // svc must stay valid until Remove() returns (plugin.h); it is checked for
  // NULL, version and struct_size. info.struct_size is set here.
  absl::Status Probe(const npa_services* svc, const npa_device_info& info);
  // The device's capabilities, checked for sanity (at least one queue pair,
  // power-of-two ring sizes, offloads within the plug-in's declared ones).
  absl::StatusOr<npa_dev_caps> GetCaps();
  // cfg is checked against the caps (queue pairs, ring size, offloads).
  absl::Status Configure(const npa_dev_config& cfg);
  // Starts and fetches every configured queue's context.
  absl::Status Start();
  // UNAVAILABLE when the plug-in is still busy (-EAGAIN): call again.
  absl::Status Quiesce(uint32_t timeout_us);
  absl::Status Stop();
  absl::Status Reset();
  absl::Status SetMac(const uint8_t mac[6]);
  absl::Status SetMtu(uint32_t mtu);
  absl::Status VlanFilter(uint16_t vid, bool on);
  absl::Status HandleIrq(uint32_t vec);
  // ABI 1.1 rss_set: configured, started or quiesced; conf is checked
  // (key, power-of-two table within the configured queues) before the
  // plug-in sees it. UNIMPLEMENTED when the plug-in lacks the op.
  absl::Status RssSet(const npa_rss_conf& conf);
  absl::StatusOr<npa_link_status> LinkStatus();
  absl::StatusOr<npa_plugin_qstats> QueueStats(uint16_t qid);
  // Releases the device. Legal from any probed, non-started state.
  absl::Status Remove();

  // Fast path: from qid's owning thread, between Start and Stop. A count
  // larger than n is a plug-in bug and fails with INTERNAL.
  absl::StatusOr<uint16_t> RxBurst(uint16_t qid, npa_buf** bufs, uint16_t n);
  absl::StatusOr<uint16_t> TxBurst(uint16_t qid, npa_buf** bufs, uint16_t n);
  absl::StatusOr<uint16_t> TxReap(uint16_t qid);
  absl::Status RxIntrEnable(uint16_t qid, bool enable);
  absl::StatusOr<int> IrqVector(uint16_t qid);

  // The context of queue qid between Start and Stop (nullptr otherwise), for
  // a data path that calls the fast ops itself (vf_path.cc): the per-burst
  // StatusOr of RxBurst/TxBurst is too dear for the fast path.
  npa_plugin_queue* queue_context(uint16_t qid) const {
    return qid < queues_.size() ? queues_[qid] : nullptr;
  }

  State state() const { return state_; }
  const LoadedPlugin& plugin() const { return *plugin_; }
  // Valid once GetCaps succeeded.
  const npa_dev_caps& caps() const { return caps_; }

 // The kinds of call the transition table (plugin_device.cc) knows.
  enum class Op : uint8_t;

 private:
  // The state op moves to from the current one, or an error if illegal.
  absl::StatusOr<State> Next(Op op) const;
  absl::Status CallStatus(const char* op, int rc) const;
  absl::StatusOr<npa_plugin_queue*> QueueFor(Op op, uint16_t qid) const;

  std::shared_ptr<const LoadedPlugin> plugin_;
  State state_ = State::kIdle;
  npa_plugin_dev* dev_ = nullptr;
  npa_dev_caps caps_{};
  uint16_t nb_queue_pairs_ = 0;
  std::vector<npa_plugin_queue*> queues_;
};

const char* StateName(PluginDevice::State s);

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_PLUGIN_DEVICE_H_
