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
// Idling: the loop busy-polls while there is work. After idle_spins empty
// iterations it asks guests for kicks (SetIdleNotify(true)), polls once more
// (closing the race with a guest that queued before it saw the flag), then
// sleeps in epoll_wait on the kick fds, the uplink's completion eventfd and a
// wake eventfd, for at most idle_sleep_ms.
#ifndef NPA_HYPERVISOR_DAEMON_DATAPLANE_H_
#define NPA_HYPERVISOR_DAEMON_DATAPLANE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/mac_switch.h"
#include "hypervisor/daemon/tap_uplink.h"

namespace npa::agent {

enum class DataplaneMode { kSwitch, kSink, kLoopback };
const char* DataplaneModeName(DataplaneMode m);
std::optional<DataplaneMode> ParseDataplaneMode(const std::string& s);

// Port 0 of the switch is the uplink; guests use their guest id (>= 1).
inline constexpr PortId kUplinkPort = 0;

struct DataplaneCounters {
  uint64_t loops = 0;
  uint64_t sleeps = 0;          // times the thread went to epoll_wait
  uint64_t sink_packets = 0, sink_bytes = 0;
  uint64_t flood_copies = 0;    // deliveries made because of floods
  uint64_t delivery_drops = 0;  // frames a destination did not take (no room, not ready)
};

class Dataplane {
 public:
  struct Options {
    DataplaneMode mode = DataplaneMode::kSwitch;
    uint16_t burst = 32;       // 1..256
    int cpu = -1;              // pin the thread to this CPU; -1: no pinning
    uint32_t idle_spins = 2000;
    int idle_sleep_ms = 10;
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
  absl::Status AddGuest(PortId id, std::shared_ptr<GuestPort> port, std::optional<MacAddr> mac);
  absl::Status RemoveGuest(PortId id);

  SwitchCounters switch_counters() const { return switch_.counters(); }
  DataplaneCounters counters() const;
  TapUplink* uplink() const { return uplink_; }
  const Options& options() const { return opts_; }

 private:
  struct Member {
    PortId id;
    std::shared_ptr<GuestPort> port;
    std::optional<MacAddr> mac;
  };
  struct Snapshot {
    std::vector<Member> members;
  };
  // Per-guest state private to the dataplane thread.
  struct Local {
    PortId id;
    std::shared_ptr<GuestPort> port;
    std::vector<int> notify_fds;
    uint64_t notify_gen = ~0ull;
    std::vector<PacketRef> out;  // pending deliveries of the current burst
    uint16_t out_qp = 0;
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
  void FlushGuest(Local& g);
  void Sleep();
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
  std::mutex mu_;
  std::condition_variable acked_cv_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<uint64_t> gen_{0};
  uint64_t acked_gen_ = 0;  // under mu_

  // Dataplane thread only.
  uint64_t seen_gen_ = 0;
  std::vector<Local> locals_;
  std::vector<PacketRef> uplink_out_;
  std::vector<uint8_t> scratch_;
  uint32_t sink_slot_ = 0;  // next scratch_ slot a sink copy goes to
  uint64_t last_age_ns_ = 0;

  struct {
    std::atomic<uint64_t> loops{0}, sleeps{0}, sink_packets{0}, sink_bytes{0}, flood_copies{0},
        delivery_drops{0};
  } c_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_DATAPLANE_H_
