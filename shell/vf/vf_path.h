// shell/vf/vf_path.h — the VF data path: a VFIO device driven by a vendor
// plug-in, behind the same per-queue fast-path table (path.h) as the
// emulated path.
//
//   VfPath::Params p;                         // device fd, identity, guest config
//   p.device_fd = std::move(fd_from_vf_offer);
//   p.emu_rx = {&emu->rx(0)}; p.emu_tx = {&emu->tx(0)};
//   NPA_ASSIGN_OR_RETURN(auto vf, VfPath::Create(std::move(p)));  // probe..configure
//   NPA_RETURN_IF_ERROR(vf->Start());
//   stage vf->ops(q) for every queue          // TX on the VF, RX: VF + emulated leftovers
//   ...
//   stage vf->QuietOps(q), Quiesce(), vf->DrainOps(q), vf->emulated ops, Stop()
//
// Why the emulated rings appear here: failsafe switching (docs/architecture.md "Switching"). While
// a queue is on the VF its RX burst keeps taking what the emulated ring still
// delivers (frames in flight when the agent steered the MAC), and its TX burst
// reaps the emulated TX ring's last completions, so a switch neither loses
// nor duplicates a frame and the emulated rings are ready to take over at
// once when the VF goes away.
//
// Offloads stay what the guest configured: where the device lacks TX
// checksum the VF TX burst fills it in software (offload.h); TSO without
// device support is refused at Create (software TSO, tso.h, is on the
// emulated path only).
//
// What a plug-in's rx_burst hands up goes to the application as it is, by
// default: a plug-in is code in this process (npa/shell.h
// NPA_SHELL_F_CHECK_PLUGIN_RX says why). With Params::check_rx (that flag)
// every RX buffer pointer must be a buffer of the shell that is out of the
// pools, and its metadata (offsets, lengths, segments, offload facts) is
// bounded before the application sees it; bad ones are counted (rx_bad,
// and rx_dropped for a buffer of ours that is freed). That costs about 33
// instructions a frame. Either way the count is clamped to what was asked.
// TX completions come back through the plug-in's buf_free, which BufPool
// checks whatever the setting.
//
// Threading: Create/Start/Quiesce/Stop and the destructor on the control
// thread; the BurstFns from each queue's owning thread (path.h);
// SetInterrupt from the owning thread (it calls the plug-in's fast op).
#ifndef NPA_SHELL_VF_VF_PATH_H_
#define NPA_SHELL_VF_VF_PATH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "shell/path.h"
#include "shell/rss_rx.h"
#include "shell/vf/plugin_device.h"
#include "shell/vf/plugin_loader.h"
#include "shell/vf/tx_tracker.h"
#include "shell/vf/vf_services.h"
#include "shell/emulated/virtq.h"

namespace npa::shell {

class VfPath : public Path {
 public:
  struct Params {
    UniqueFd device_fd;                  // owned from here on; closed last
    std::unique_ptr<VfioDeviceIo> io;    // test seam; null: the real fd
    std::string pci_address;             // "0000:00:04.0", logs and errors
    PciIdentity offered;                 // what the agent said it is
    std::vector<std::string> plugin_dirs;
    uint16_t nb_queue_pairs = 1;
    uint16_t ring_size = 256;            // the shell's; clamped to the device's range
    uint8_t mac[6] = {};
    uint32_t mtu = 1500;
    uint64_t guest_offloads = 0;         // NPA_OFFLOAD_* the guest configured
    bool rx_intr = false;                // wire per-queue MSI-X if the device can
    bool check_rx = false;               // NPA_SHELL_F_CHECK_PLUGIN_RX: see Queue
    DmaArena* arena = nullptr;           // outlives the path
    BufferProvider* buffers = nullptr;   // outlives the path
    std::vector<RxVirtq*> emu_rx;        // per queue: the emulated rings
    std::vector<TxVirtq*> emu_tx;
    std::vector<TxTracker*> tx_track;    // per queue, optional: marks VF TX frames
    // NPA_OFFLOAD_RSS_HASH: the configuration in force (null without the
    // offload). Replayed into a plug-in with NPA_CAP_RSS and rss_set right
    // after configure; see SetRss.
    std::shared_ptr<const RssRx> rss;
    LogSink log;
  };

  // Loads the matching plug-in, builds the services table, probes, checks
  // the caps against the guest's configuration, configures. Every error
  // names the step that failed ("no plug-in for ...", "probe failed: ...").
  static absl::StatusOr<std::unique_ptr<VfPath>> Create(Params p);
  // Stops and removes the plug-in if still running, then closes the fd.
  ~VfPath() override;

  npa_path kind() const override { return NPA_PATH_VF; }
  uint64_t offloads() const override { return guest_offloads_; }
  absl::Status Start() override;
  absl::Status Stop() override;
  // On the VF: TX on the VF, RX from the VF then the emulated ring.
  QueueOps ops(uint16_t qid) override;
  // TX on the emulated ring, RX from the emulated ring only: no fast op of
  // the plug-in runs while it quiesces (plugin.h: never concurrently).
  QueueOps QuietOps(uint16_t qid);
  // TX on the emulated ring, RX from the VF then the emulated ring; a VF RX
  // burst that comes back empty raises rx_drained(qid).
  QueueOps DrainOps(uint16_t qid);
  bool rx_drained(uint16_t qid) const {
    return queues_[qid]->drained.load(std::memory_order_acquire) != 0;
  }
  void ResetDrained(uint16_t qid) { queues_[qid]->drained.store(0, std::memory_order_release); }

  int intr_eventfd(uint16_t qid) const override;
  void SetInterrupt(uint16_t qid, bool enable) override;
  bool link_up() const override;

  // Bounded: repeats quiesce until idle or timeout_ms passed. true: idle.
  bool Quiesce(uint32_t timeout_ms);
  // Hardware RSS (plugin.h rss_set): hands the plug-in rss's key, hash
  // types and table when the guest configured NPA_OFFLOAD_RSS_HASH and the
  // device offers NPA_CAP_RSS with the op (hw_rss()); a no-op otherwise.
  // Control thread, under vf_mu; the queues may be bursting on the VF. The
  // shell's software hash (rss_rx.h) stays on for every frame whatever
  // this returns: it decides only which queue the device fills. A failure
  // is returned for the caller to log.
  absl::Status SetRss(const RssRx& rss);
  bool hw_rss() const { return hw_rss_; }

  // The plug-in's counters for qid (control thread); zero when unreadable.
  npa_plugin_qstats QueueStats(uint16_t qid);

  const std::string& plugin_name() const { return plugin_name_; }
  const std::string& pci_address() const { return pci_; }
  VfServices* services() { return services_.get(); }
  // REQ / ERR eventfds (-1 when the device lacks them).
  int req_fd() const { return req_fd_; }
  int err_fd() const { return err_fd_; }
  bool sw_tx_csum() const { return sw_tx_csum_; }
  // NPA_PLUGIN_F_TX_BYTES: the plug-in's queue_stats.tx_bytes is the
  // queue's TX byte count on the VF; the TX burst does not count bytes.
  bool plugin_tx_bytes() const { return plugin_tx_bytes_; }
  // NPA_PLUGIN_F_RX_BYTES, unless the shell checks the plug-in's RX
  // (NPA_SHELL_F_CHECK_PLUGIN_RX) or strips VLAN tags in software: the
  // plug-in's queue_stats.rx_bytes is the queue's RX byte count on the VF;
  // the RX burst does not count bytes.
  bool plugin_rx_bytes() const { return plugin_rx_bytes_; }

  // Shared with the burst functions (vf_path.cc); one per queue.
  struct alignas(64) Queue {
    npa_plugin_queue* pq = nullptr;
    uint16_t (*rx)(npa_plugin_queue*, npa_buf**, uint16_t) = nullptr;
    uint16_t (*tx)(npa_plugin_queue*, npa_buf**, uint16_t) = nullptr;
    RxVirtq* emu_rx = nullptr;
    TxVirtq* emu_tx = nullptr;
    BufPool* pool = nullptr;     // the queue's (emu_rx's): checks what rx hands up
    TxTracker* track = nullptr;
    uint32_t sw_tx_flags = 0;    // NPA_BUF_OL_TX_* done in software here
    bool sw_vlan_strip = false;
    bool plugin_tx_bytes = false;  // NPA_PLUGIN_F_TX_BYTES: no byte count here
    // NPA_SHELL_F_CHECK_PLUGIN_RX: every frame rx hands up is checked
    // (vf_path.cc CheckVfRx); otherwise only its count is clamped.
    bool check_rx = false;
    bool plugin_rx_bytes = false;  // VfPath::plugin_rx_bytes(): no byte count here
    std::atomic<uint32_t> drained{0};
    int intr_fd = -1;
  };

 private:
  VfPath() = default;

  UniqueFd fd_;  // declared first: closed after the plug-in and the services
  std::unique_ptr<VfServices> services_;
  std::unique_ptr<PluginDevice> dev_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::string pci_, plugin_name_;
  uint64_t guest_offloads_ = 0;
  uint16_t nqp_ = 0;
  bool sw_tx_csum_ = false;
  bool rx_intr_ = false;
  bool hw_rss_ = false;
  bool plugin_rx_bytes_ = false;
  bool plugin_tx_bytes_ = false;
  int req_fd_ = -1, err_fd_ = -1;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_VF_PATH_H_
