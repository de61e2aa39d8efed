// hypervisor/daemon/dataplane_migration.h — the dataplane's migration side
// (docs/migration.md), split out of dataplane.cc: frames kept for a held MAC,
// frames injected into a guest's RX, and frames queued for the uplink.
// Dataplane (dataplane.h) owns one ControlQueue and publishes its MacHolds in
// its guest snapshot; its public HoldMac/TakeHeld/ReleaseMac/InjectRx/
// SendOnUplink are thin wrappers over these, defined beside them in
// dataplane_migration.cc.
//
//   auto h = std::make_shared<MacHold>(MacKey(mac.data()), 1024);
//   // dataplane thread, only while some MAC is held (Dataplane::Deliver):
//   RouteToHolds(holds, from_mac_key, p, eth, &kept, &dropped);
//   // control thread:
//   HeldFrames f = h->Close();            // or h->Take(): the hold stays on
//
//   ControlQueue q(uplink);               // uplink may be null
//   q.set_wake_fd(wake_fd);               // the dataplane's eventfd
//   uint64_t lost = q.Inject(guest, std::move(frames), running);  // control thread
//   // dataplane thread, when q.pending():
//   q.Service(now_ns, burst, [&](PortId id) { return port_of(id); });
//
// Frame layout (held and injected): kHeldFrameHdrLen bytes of
// virtio_net_hdr_v1 (zeros when the frame came with none), then the Ethernet
// frame.
//
// Threads: MacHold's methods take its own mutex (the dataplane appends, the
// control thread takes). ControlQueue: Inject/SendOnUplink/FailAll from any
// control thread, Service on the dataplane thread only; both sides under the
// queue's mutex, which the dataplane takes only when pending() said there is
// work (one acquire load per loop, nothing per frame).
// Counters: every frame is counted once — kept or dropped (MacHold), injected
// or failed, sent or dropped (ControlQueue).
#ifndef NPA_HYPERVISOR_DAEMON_DATAPLANE_MIGRATION_H_
#define NPA_HYPERVISOR_DAEMON_DATAPLANE_MIGRATION_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "hypervisor/daemon/dataplane_frames.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/mac_switch.h"
#include "hypervisor/daemon/tap_uplink.h"

namespace npa::agent {

// Held/injected frame layout: this many bytes of virtio_net_hdr_v1, then the
// Ethernet frame.
inline constexpr size_t kHeldFrameHdrLen = kNetHdrLen;
// Bytes one held MAC may keep (headers included), whatever max_frames says:
// 1024 full-size TSO frames, or ~22k MTU-sized ones.
inline constexpr size_t kMaxHeldBytes = 64ull << 20;
// An injection (or the loopback's hold) gives up after this long without
// progress.
inline constexpr uint64_t kMaxHoldNs = 100'000'000;

struct HeldFrames {
  std::vector<std::string> frames;  // oldest first, kHeldFrameHdrLen + frame each
  uint64_t dropped = 0;             // over max_frames / kMaxHeldBytes, or after Close
};

// One held MAC: the frames the switch would have delivered to it, in order,
// bounded by max_frames and kMaxHeldBytes.
class MacHold {
 public:
  MacHold(uint64_t key, size_t max_frames) : key_(key), max_frames_(max_frames) {}
  uint64_t key() const { return key_; }
  void set_max_frames(size_t n);
  // Dataplane thread. A copy of p (header + frame) is kept: true. Over the
  // bounds or closed: counted in dropped, false.
  bool Append(const PacketRef& p);
  // What was kept so far (and its drop count); the hold stays on.
  HeldFrames Take();
  // Ends the hold: what it still kept; later Appends count as drops.
  HeldFrames Close();

 private:
  const uint64_t key_;
  std::mutex mu_;
  size_t max_frames_;     // under mu_
  size_t bytes_ = 0;      // under mu_
  bool closed_ = false;   // under mu_
  HeldFrames held_;       // under mu_
};

// Deliver()'s slow path while any MAC is held. A unicast frame to a held MAC
// goes to its hold (true: consumed, neither delivered nor flooded). A
// broadcast/multicast one is copied to every hold except the sender's own
// (from_key: the sending port's pinned MAC, 0 if none; or the source MAC)
// and still delivered (false). kept/dropped count the copies.
bool RouteToHolds(std::span<const std::shared_ptr<MacHold>> holds, uint64_t from_key,
                  const PacketRef& p, const uint8_t* eth, uint64_t* kept, uint64_t* dropped);

struct ControlQueueCounters {
  uint64_t injected = 0;        // Inject frames delivered
  uint64_t inject_failed = 0;   // Inject frames that did not fit (also returned)
  uint64_t uplink_control = 0;  // SendOnUplink frames sent
  uint64_t uplink_dropped = 0;  // SendOnUplink frames the uplink did not take
};

// Control work handed to the dataplane thread: injections into a guest's RX
// and frames for the uplink.
class ControlQueue {
 public:
  explicit ControlQueue(TapUplink* uplink) : uplink_(uplink) {}
  void set_wake_fd(int fd) { wake_fd_ = fd; }  // written to hand work over

  // Dataplane thread: is there work? One acquire load.
  bool pending() const { return pending_.load(std::memory_order_acquire); }

  // Control thread. Hands frames to the dataplane for guest's RX and waits
  // (bounded, 3 s) until they are delivered or given up (no such guest, no
  // room for kMaxHoldNs, malformed). Returns how many were not delivered
  // (counted in inject_failed). running false: all fail at once.
  uint64_t Inject(PortId guest, std::vector<std::string> frames, bool running);
  // Sends one Ethernet frame (no virtio header) on the uplink at once, from
  // the calling thread (TapUplink::SendDirect), whether or not the dataplane
  // runs. Errors as Dataplane::SendOnUplink.
  absl::Status SendOnUplink(std::span<const uint8_t> frame, bool running);
  // After the dataplane thread stopped: every pending injection fails.
  void FailAll();

  // Dataplane thread. Moves injections along;
  // returns frames moved. port_of: the guest's port, null if not a member.
  uint32_t Service(uint64_t now_ns, uint16_t burst, absl::FunctionRef<GuestPort*(PortId)> port_of);

  ControlQueueCounters counters() const;

 private:
  struct InjectJob {
    PortId guest;
    std::vector<std::string> frames;
    size_t next = 0;
    uint64_t failed = 0;
    uint64_t last_progress_ns = 0;
    bool done = false;
  };
  void Wake();
  // One guest's injection, as far as its ring takes it now.
  uint32_t ServiceInject(InjectJob& j, uint64_t now_ns, uint16_t burst, GuestPort* port);

  TapUplink* const uplink_;
  int wake_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> pending_{false};
  std::vector<std::shared_ptr<InjectJob>> injects_;  // under mu_
  std::atomic<uint64_t> injected_{0}, inject_failed_{0}, uplink_control_{0}, uplink_dropped_{0};
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_DATAPLANE_MIGRATION_H_
