// hypervisor/daemon/dataplane.h — the agent's one polling thread: guests' queue
// pairs and the uplink, through the MAC switch.
//
//   Dataplane dp({.mode = DataplaneMode::kSwitch, .burst = 32, .cpu = 1},
//                uplink.get());                      // uplink may be null
//   NPA_RETURN_IF_ERROR(dp.Start());
//   dp.AddGuest(7, port, guest_mac);                  // control thread
//   ...
//   dp.RemoveGuest(7);   // returns once the dataplane no longer touches port
//   dp.Stop();
//
// Modes:
//   switch    guest TX -> MacSwitch -> other guests (EnqueueRx) / uplink
//             (Send) / flood; uplink RX -> MacSwitch -> guests. Copy
//             semantics: every destination copies, then the guest's TX
//             buffers are released in one ReleaseTx per burst.
//   sink      guest TX is copied into a scratch buffer (as a forwarder would
//             touch it), counted and released. For benchmarks.
//   loopback  each guest's TX frames go back into its own RX, same queue.
//
// Guest set changes are RCU-like: the control thread publishes a new
// immutable snapshot and bumps a generation; the dataplane picks it up at the
// top of a loop iteration (one atomic load per iteration, nothing per
// packet) and acknowledges; AddGuest/RemoveGuest wait for that
// acknowledgement, so after RemoveGuest returns the port may be destroyed.
//
// Fairness: each poll gives each guest at most `burst` frames and
// `desc_budget` descriptors over all its queues (the queue it starts with
// rotates), then moves on: a guest's cost per poll does not depend on its
// ring size, its chain lengths or how many queues it negotiated. What it
// did not get to stays in its ring for the next round; nothing is dropped.
//
// Checked bytes are delivered bytes: the Ethernet header of a guest's frame
// is copied out of guest memory once; the switch (anti-spoofing, learning,
// lookup) decides on that copy, and every destination receives that copy
// followed by the rest of the frame, so a guest rewriting its header after
// the check changes nothing.
//
// Migration (docs/migration.md), control thread:
//   dp.HoldMac(mac, 1024);                 // from now on frames for mac wait
//   ... rings stopped, state sent ...
//   Dataplane::HeldFrames h = dp.ReleaseMac(mac);   // send h.frames to B
//   // on B, after the resume:
//   uint64_t lost = dp.InjectRx(guest_id, std::move(h.frames));
//   dp.SendOnUplink(BuildRarpAnnounce(mac));         // at once, not blocking
// Held and injected frames are strings of kHeldFrameHdrLen bytes of
// virtio_net_hdr_v1 (the offload metadata the frame came with; zeros when
// none) followed by the Ethernet frame. Non-held traffic pays one
// predictable branch per frame (is any MAC held?).
//
// Idling: the loop busy-polls while there is work. After idle_spins empty
// iterations it asks guests for kicks (SetIdleNotify(true)), polls once more
// (closing the race with a guest that queued before it saw the flag), then
// sleeps in epoll_wait on the kick fds, the uplink's completion eventfd and a
// wake eventfd, for at most idle_sleep_ms. With coalesce_us (interrupt
// moderation, idle_policy.h) it instead waits coalesce_us between polls while
// traffic flows, with guests' kicks off, and sleeps as above only after
// IdlePolicy::kDeepIdleNs without work.
//
// The migration side (held MACs, injections, uplink control frames) is its
// own component, dataplane_migration.h; this class wires it in.
#ifndef NPA_HYPERVISOR_DAEMON_DATAPLANE_H_
#define NPA_HYPERVISOR_DAEMON_DATAPLANE_H_

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "hypervisor/daemon/dataplane_migration.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/mac_switch.h"
#include "hypervisor/daemon/tap_uplink.h"

namespace npa::agent {

class GuestRss;  // guest_rss.h

enum class DataplaneMode { kSwitch, kSink, kLoopback };
const char* DataplaneModeName(DataplaneMode m);
std::optional<DataplaneMode> ParseDataplaneMode(const std::string& s);

// Port 0 of the switch is the uplink; guests use their guest id (>= 1).
inline constexpr PortId kUplinkPort = 0;

struct DataplaneCounters {
  uint64_t loops = 0;
  uint64_t sleeps = 0;          // times the thread went to epoll_wait
  uint64_t coalesced_waits = 0; // moderation intervals waited (coalesce_us)
  uint64_t sink_packets = 0, sink_bytes = 0;
  uint64_t flood_copies = 0;    // deliveries made because of floods
  uint64_t delivery_drops = 0;  // frames a destination did not take (no room, not ready, gone)
  // Frames the switch flooded while no port but the sender's could take a
  // copy: no other guest, no uplink (or every other guest's MAC held). Such
  // a frame is lost, and this is where it is counted.
  uint64_t flooded_to_nobody = 0;
  uint64_t held = 0;            // frames kept for a held MAC
  uint64_t held_dropped = 0;    // frames for a held MAC over its bounds
  uint64_t injected = 0;        // InjectRx frames delivered
  uint64_t inject_failed = 0;   // InjectRx frames that did not fit (also returned)
  uint64_t uplink_control = 0;  // SendOnUplink frames sent
  uint64_t budget_yields = 0;   // polls that left a guest's work for the next round
};

class Dataplane {
 public:
  struct Options {
    DataplaneMode mode = DataplaneMode::kSwitch;
    uint16_t burst = 32;       // 1..256: frames per guest per poll (all its queues)
    // Descriptors per guest per poll (all its queues), >= burst. A chain in
    // progress finishes (at most kMaxChainDescs), so a poll's overshoot is
    // bounded too.
    uint32_t desc_budget = 512;
    int cpu = -1;              // pin the thread to this CPU; -1: no pinning
    uint32_t idle_spins = 2000;
    int idle_sleep_ms = 10;
    // Interrupt moderation (idle_policy.h): 0 off, else 1..10000 us. While
    // traffic flows the thread waits this long between polls instead of
    // spinning or asking for kicks, so a frame waits up to this long and
    // each guest RX ring gets at most one interrupt per interval.
    uint32_t coalesce_us = 0;
    MacSwitch::Options switch_opts;
  };

  // uplink may be null (no uplink); it must outlive the Dataplane.
  Dataplane(Options opts, TapUplink* uplink);
  ~Dataplane();  // Stop()s
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  // Starts the thread (and pins it). kInvalidArgument for bad options, or
  // the errno of pthread_setaffinity_np naming the CPU.
  absl::Status Start();
  void Stop();

  // Control thread. mac, when given, is pinned to the guest's port (anti-
  // spoofing); kAlreadyExists if another guest has it. Both wait (bounded,
  // 2 s) until the dataplane has seen the change; kDeadlineExceeded if it did
  // not (a stuck dataplane), in which case the caller must not destroy port.
  // rss, when given, decides the RX queue of each frame for this guest
  // (guest_rss.h); without it a frame goes to the sender's queue modulo the
  // guest's.
  absl::Status AddGuest(PortId id, std::shared_ptr<GuestPort> port, std::optional<MacAddr> mac,
                        std::shared_ptr<const GuestRss> rss = nullptr);
  absl::Status RemoveGuest(PortId id);
  // A guest's new RSS configuration (null: none); kNotFound if it is not in
  // the dataplane. Waits like AddGuest.
  absl::Status SetGuestRss(PortId id, std::shared_ptr<const GuestRss> rss);

  // ---- Migration (control thread; any one thread at a time) ----
  using HeldFrames = npa::agent::HeldFrames;  // dataplane_migration.h
  // From when this returns, frames the switch would deliver to mac (from the
  // uplink or another guest; unicast to it, and a copy of each broadcast/
  // multicast not sent by its own port) are kept in order instead, whether
  // or not a member guest has that MAC; unicast ones are not flooded
  // elsewhere either. At most max_frames frames and kMaxHeldBytes bytes are
  // kept; more are counted in dropped. Holding a held MAC again changes its
  // bound. kInvalidArgument for a multicast or zero MAC; kDeadlineExceeded
  // as AddGuest.
  absl::Status HoldMac(const MacAddr& mac, size_t max_frames);
  // What was held so far (the hold stays on); empty if mac is not held.
  HeldFrames TakeHeld(const MacAddr& mac);
  // Ends the hold and returns what it still held (and its drop count).
  HeldFrames ReleaseMac(const MacAddr& mac);
  // Delivers frames (kHeldFrameHdrLen + frame each) to guest's RX as if they
  // came from the uplink, in order, on the dataplane thread, waiting up to
  // 100 ms for RX room without progress. Returns how many were not
  // delivered (no such guest, no room, malformed, or not running); they are
  // counted in inject_failed, never silently dropped. Waits (bounded, ~2 s).
  uint64_t InjectRx(PortId guest, std::vector<std::string> frames);
  // Sends one Ethernet frame (no virtio header) the agent made (a RARP) on
  // the uplink at once, from the calling thread: one non-blocking write on
  // the TAP (TapUplink::SendDirect), not a handoff to the dataplane's next
  // loop, so an announcement leaves within microseconds of the decision.
  // kFailedPrecondition without an uplink, kInvalidArgument for a frame
  // shorter than 14 bytes or longer than the uplink's room, kUnavailable
  // when the TAP's queue is full (counted in uplink_dropped).
  absl::Status SendOnUplink(std::span<const uint8_t> frame);

  // The restart gate (docs/security.md "Agent restart"): while held, the
  // thread reads no guest's TX ring and not the uplink, so every frame waits
  // where it is (the guest's ring, the TAP's kernel queue) instead of being
  // switched to a guest that has not come back yet and lost. Injections and
  // SendOnUplink still run. Any thread; costs the loop one relaxed load (no
  // per-frame work). Releasing wakes a sleeping dataplane.
  void HoldTraffic(bool hold);
  bool traffic_held() const { return hold_traffic_.load(std::memory_order_relaxed); }

  // The guests it serves now, from the published snapshot (any thread; the
  // snapshot's mutex, which the dataplane thread takes only when the guest
  // set changes). For metrics and stats, never per frame.
  struct GuestView {
    PortId id;
    std::shared_ptr<GuestPort> port;
  };
  std::vector<GuestView> Guests() const;

  SwitchCounters switch_counters() const { return switch_.counters(); }
  DataplaneCounters counters() const;
  // The loop counter alone (the service watchdog's progress check): one
  // relaxed load, where counters() gathers them all.
  uint64_t loops() const { return c_.loops.load(std::memory_order_relaxed); }
  TapUplink* uplink() const { return uplink_; }
  const Options& options() const { return opts_; }

 private:
  struct Member {
    PortId id;
    std::shared_ptr<GuestPort> port;
    std::optional<MacAddr> mac;
    std::shared_ptr<const GuestRss> rss;
  };
  struct Snapshot {
    std::vector<Member> members;
    std::vector<std::shared_ptr<MacHold>> holds;
  };
  // Per-guest state private to the dataplane thread.
  struct Local {
    PortId id;
    std::shared_ptr<GuestPort> port;
    std::vector<UniqueFd> notify_fds;  // our duplicates (GuestPort::DupNotifyFds)
    uint64_t notify_gen = ~0ull;
    std::vector<PacketRef> out;  // pending deliveries of the current burst
    uint16_t out_qp = 0;
    uint16_t next_qp = 0;        // the queue the next poll starts with (round robin)
    uint64_t mac_key = 0;        // MacKey of its pinned MAC, 0 if none
    bool mac_held = false;       // its MAC is held: floods go to the hold instead
    std::shared_ptr<const GuestRss> rss;  // its RX queue by flow, or null
    // Loopback: frames peeked from a TX queue that the guest's RX ring had no
    // room for yet, per queue pair, oldest first. They stay unreleased (so
    // the guest's TX ring holds them) until delivered: backpressure instead
    // of loss, in order.
    std::vector<std::vector<GuestFrame>> held;
    std::vector<uint64_t> held_since_ns;  // last progress of held[qp]
  };
  uint32_t PollLoopback(Local& g, uint16_t qp, GuestFrame* frames, PacketRef* refs,
                        uint64_t now_ns);

  void Run();
  absl::Status Publish(std::shared_ptr<const Snapshot> next);
  void Refresh();
  uint32_t PollOnce(uint64_t now_ns);
  uint32_t PollGuest(Local& g, uint64_t now_ns);
  uint32_t PollUplink(uint64_t now_ns);
  void Deliver(PortId from, uint16_t qp, const PacketRef& p, const uint8_t* eth, uint64_t now_ns);
  void Flush();
  // Deliver()'s slow path while any MAC is held: true when p was consumed.
  bool DeliverHeld(PortId from, const PacketRef& p, const uint8_t* eth);
  // InjectRx/SendOnUplink work; returns frames moved.
  uint32_t ServiceControl(uint64_t now_ns);
  std::shared_ptr<Snapshot> CopySnapshot();
  void FlushGuest(Local& g);
  void Sleep();
  // Blocks in epoll_pwait2 for at most timeout_ns (>= 0) and
  // consumes the eventfd counts that woke it.
  void WaitEvents(int64_t timeout_ns);
  void SyncNotifyFds(Local& g);
  void DropNotifyFds(Local& g);
  void Add(std::atomic<uint64_t>& c, uint64_t v) {
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  Options opts_;
  TapUplink* uplink_;
  MacSwitch switch_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  UniqueFd wake_fd_;
  UniqueFd epoll_fd_;

  // Published by the control thread under mu_; gen_ bumped after.
  mutable std::mutex mu_;
  std::condition_variable acked_cv_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<uint64_t> gen_{0};
  uint64_t acked_gen_ = 0;  // under mu_

  // Dataplane thread only.
  uint64_t seen_gen_ = 0;
  std::vector<Local> locals_;
  std::vector<PacketRef> uplink_out_;
  std::vector<uint8_t> scratch_;
  // Switch mode, per frame of a burst: the checked copy of the Ethernet
  // header and the segments delivered (that copy, then the rest).
  std::vector<std::array<uint8_t, 16>> eth_copies_;
  std::vector<iovec> checked_segs_;
  std::vector<std::shared_ptr<MacHold>> holds_;  // from the snapshot

  // Control work for the dataplane thread (injections, uplink frames).
  ControlQueue ctl_;
  std::atomic<bool> hold_traffic_{false};
  uint32_t sink_slot_ = 0;  // next scratch_ slot a sink copy goes to
  uint64_t last_age_ns_ = 0;

  struct {
    std::atomic<uint64_t> loops{0}, sleeps{0}, coalesced_waits{0}, sink_packets{0}, sink_bytes{0}, flood_copies{0},
        delivery_drops{0}, flooded_to_nobody{0}, held{0}, held_dropped{0}, budget_yields{0};
  } c_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_DATAPLANE_H_
