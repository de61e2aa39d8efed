// shell/shell_impl.h — the state behind the opaque npa_shell handle.
// Internal: only shell.cc and tests include it.
#ifndef NPA_SHELL_SHELL_IMPL_H_
#define NPA_SHELL_SHELL_IMPL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "common/unique_fd.h"
#include "npa/shell.h"
#include "shell/buf_pool.h"
#include "shell/control_client.h"
#include "shell/emulated/emulated_path.h"
#include "shell/event_queue.h"
#include "shell/path.h"
#include "shell/region.h"
#include "shell/rss_rx.h"
#include "shell/emulated/vhost_user_frontend.h"
#include "shell/vf/path_switch.h"
#include "shell/vf/shell_buffers.h"
#include "shell/vf/tx_tracker.h"
#include "shell/vf/vf_path.h"
#include "shell/vf/vf_services.h"

namespace npa::shell {

// A byte count a plug-in keeps for the shell (NPA_PLUGIN_F_TX_BYTES,
// NPA_PLUGIN_F_RX_BYTES): the plug-in counts since probe, so each VF's
// count starts at its reading at attach (Begin), and only growth is folded
// in (Fold): a reading below the last one adds nothing, so the sum stays
// monotonic. `folded` is added to the shell's own count by every reader;
// Begin and Fold run on the control side under vf_mu.
struct PluginBytes {
  std::atomic<uint64_t> folded{0};
  uint64_t seen = 0;
  void Begin(uint64_t reading) { seen = reading; }
  void Fold(uint64_t reading) {
    if (reading <= seen) return;
    folded.fetch_add(reading - seen, std::memory_order_relaxed);
    seen = reading;
  }
  uint64_t load() const { return folded.load(std::memory_order_relaxed); }
};

// One queue pair. The fast path reads the ops in use (their own cache line,
// QueueOps is 64-byte aligned), then the "switch pending" flag and the RSS
// configuration, which share the next line. A control thread stages new ops in
// `staged` (under stage_mu) and raises `switch_pending` (release); the owning
// thread applies them at its next burst and clears the flag (its ack).
//
// Buffers and threads (ShellBuffers, shell_buffers.h): the pool is the owner's.
// The plug-in's buf_alloc/buf_free from the control path (its RX ring at
// start, reaped TX at quiesce, everything at stop), made inside a
// ShellBuffers::ControlCall, use `stash` instead, under stash_mu; the owner
// moves buffers between pool and stash at each switch it applies, so the
// stash holds about one device ring's worth (stash_target) when a VF is
// offered.
struct alignas(64) QueueState {
  QueueOps ops;                              // owner thread only
  std::atomic<uint32_t> switch_pending{0};
  const RssRx* rss = nullptr;                // owner: hash after each RX burst (nullptr: off)
  BufPool pool;                              // owner thread only
  QueueCounters c;
  std::mutex stage_mu;
  QueueOps staged;
  Path* staged_intr = nullptr;               // the path whose interrupt goes with `staged`
  Path* intr_path = nullptr;                 // owner thread: the path of `ops`
  uint16_t qid = 0;
  UniqueFd intr_ep;                          // epoll fd the application sees
  int intr_src = -1;                         // emulated call eventfd inside intr_ep
  std::atomic<int> vf_intr{-1};              // the VF queue's MSI-X eventfd in intr_ep
  UniqueFd wake;                             // in intr_ep: "a switch is staged, burst once"
  bool intr_enabled = false;                 // owner thread
  std::mutex stash_mu;
  std::vector<npa_buf*> stash;
  uint32_t stash_target = 0;
  // Plug-in RX drops of earlier VFs, and the last reading of the current one.
  std::atomic<uint64_t> vf_dropped_base{0}, vf_dropped_live{0};
  // TX frames the VF holds (tx_tracker.h); vf_tx_lost: frames earlier VFs
  // had taken and not completed when the shell gave them up.
  TxTracker vf_tx;
  std::atomic<uint64_t> vf_tx_lost{0};
  // NPA_PLUGIN_F_TX_BYTES / NPA_PLUGIN_F_RX_BYTES (plugin.h): while such a
  // VF is attached, its plug-in counts the queue's TX (RX) bytes and the VF
  // burst does not (a load and an add per frame less). The control side
  // folds the growth of the plug-in's queue_stats.tx_bytes (rx_bytes) into
  // vf_tx_bytes (vf_rx_bytes): at attach (the VF's zero), at every
  // npa_shell_queue_stats that finds no switch running, and at release.
  // The RARP announcement (SendAnnounce) goes through the plug-in's TX too
  // and is not the application's: the owner adds its bytes to
  // announce_bytes before the TX call (takes them back if the path refused
  // it), and the TX fold takes them off.
  PluginBytes vf_tx_bytes, vf_rx_bytes;
  std::atomic<uint64_t> announce_bytes{0};  // owner: announcement bytes handed to TX
  uint64_t vf_announce_base = 0;            // under vf_mu: announce_bytes at attach
  // Control side, under vf_mu, before the VF's ops are staged: the plug-in's
  // tx_bytes now (it counts since probe) is the VF's zero.
  void BeginVfTxBytes(uint64_t reading) {
    vf_announce_base = announce_bytes.load(std::memory_order_acquire);
    vf_tx_bytes.Begin(reading);
  }
  // Control side, under vf_mu: a reading of the plug-in's tx_bytes (read
  // before announce_bytes: an announcement it counted is then taken off).
  void FoldVfTxBytes(uint64_t reading) {
    const uint64_t ours = announce_bytes.load(std::memory_order_acquire) - vf_announce_base;
    if (reading >= ours) vf_tx_bytes.Fold(reading - ours);
  }
  // A RARP announcement (common/announce.h) to send through the staged ops
  // once applied (a VF just switched to); under stage_mu. `announces`
  // counts those sent (npa_queue_stats.announces), apart from the
  // application's TX counters. mac: the guest's, set at configure.
  bool staged_announce = false;
  std::atomic<uint64_t> announces{0};
  uint8_t mac[6] = {};
  // Frames in flight on the TX ring when an agent went away without
  // stopping it (npa_queue_stats.tx_resubmitted; shell/reconnect.h).
  std::atomic<uint64_t> tx_resubmitted{0};
  // NPA_OFFLOAD_RSS_HASH (rss_rx.h): the configuration a control thread
  // staged for the owner (under stage_mu, with switch_pending); `rss`, in
  // the first cache line, is the one it hashes with.
  const RssRx* staged_rss = nullptr;
  bool rss_staged = false;

  // Control side: publish ops (and the path whose interrupt goes with them),
  // and nudge an owner sleeping in interrupt mode. announce: also send one
  // RARP announcement through them when the owner applies them.
  void Stage(const QueueOps& o, Path* intr, bool announce = false);
  // Control side: publish an RSS configuration the same way (the owner
  // takes it with the staged ops, which stay as they are).
  void StageRss(const RssRx* r);
  // Owner side, at a burst boundary: take the staged ops; the ack.
  void ApplySwitch();
  // Owner side, in ApplySwitch: one announcement through ops.tx.
  void SendAnnounce();

 private:
  // Stage and StageRss: set() writes the staged fields under stage_mu, then
  // switch_pending is raised and a sleeping owner woken.
  void Publish(absl::FunctionRef<void()> set);
};

enum class ShellState { kOpen, kConfigured, kStarted, kStopped };

}  // namespace npa::shell

struct npa_shell {
  std::mutex mu;  // control calls
  npa::shell::ShellState state = npa::shell::ShellState::kOpen;
  uint32_t flags = 0;
  int timeout_ms = 5000;
  std::string name;
  uint8_t mac[6] = {};
  uint16_t mtu = 1500;
  std::unique_ptr<npa::shell::ControlClient> control;
  std::unique_ptr<npa::shell::VhostUserFrontend> fe;
  npa::shell::EventQueue events;
  npa::shell::Region region;
  uint16_t nb_queue_pairs = 0;
  uint16_t ring_size = 0;
  uint64_t offloads = 0;
  uint64_t guest_offloads = 0;  // what npa_shell_configure was asked for
  std::unique_ptr<npa::shell::QueueState[]> queues;
  std::unique_ptr<npa::shell::EmulatedPath> emulated;
  npa::shell::Path* active = nullptr;  // under mu
  std::string plugin;                  // under mu: the active plug-in, "" when emulated

  // The VF path (vf_switch.h). vf_mu serializes attach / revoke / fallback
  // / close; it is never held by a burst call, and the owner threads never
  // wait for it (the control thread waits for their acks while holding it).
  // path: where the queues are and which switch step runs (path_switch.h);
  // vf exists from ATTACHING's start to RELEASING.
  std::mutex vf_mu;
  npa::shell::PathSwitch path;  // under vf_mu
  std::unique_ptr<npa::shell::VfPath> vf;
  uint64_t vf_offer_id = 0;
  std::unique_ptr<npa::shell::RegionDmaArena> dma;   // plug-in rings
  std::unique_ptr<npa::shell::ShellBuffers> vf_buffers;  // with a control session

  // Migration and agent restart (shell/reconnect.h). Control thread, under
  // vf_mu: where the agent is (the destination's path once migrated),
  // how long to keep reconnecting, and the rings' stopped indices while
  // MIGRATE_STOPPED (per vring, virtio-net numbering).
  std::string control_path;
  uint32_t reconnect_ms = 3000;
  uint64_t migration_id = 0;
  uint64_t migrate_t0 = 0;  // MonotonicNs at MigratePrepare
  std::vector<uint16_t> stopped_base;

  // NPA_OFFLOAD_RSS_HASH, under mu: the configuration in force, and those it
  // replaced that a queue's owner may still hold (freed once every queue has
  // acknowledged a later staging; rss_rx.h).
  std::shared_ptr<const npa::shell::RssRx> rss;
  std::vector<std::shared_ptr<const npa::shell::RssRx>> rss_retired;
};

#endif  // NPA_SHELL_SHELL_IMPL_H_
