// hypervisor/daemon/tap_uplink.h — the agent's uplink: a TAP device with
// IFF_VNET_HDR, driven through io_uring with registered buffers.
//
//   NPA_ASSIGN_OR_RETURN(auto up, TapUplink::Create({.name = "npa0"}));
//   UplinkFrame f[32];
//   uint16_t n = up->Receive(f, 32);        // frames + their virtio_net_hdr
//   ... deliver f[0..n) (valid until the next Receive) ...
//   uint16_t sent = up->Send(pkts, m);      // copies; caller may reuse pkts now
//
// Design:
//  - The TAP is opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, the vnet header
//    size is 12 (virtio_net_hdr_v1, TUNSETVNETHDRSZ), offloads are set with
//    TUNSETOFFLOAD from Options::offloads (TUN_F_*), and the interface is
//    brought up (SIOCSIFFLAGS IFF_UP).
//  - All packet memory is one anonymous mapping registered with
//    io_uring_register_buffers, cut into rx_depth RX slots and tx_depth TX
//    slots of slot_size bytes (12-byte header + frame).
//  - TX: each frame is copied into a free TX slot and written with
//    IORING_OP_WRITE_FIXED; a Send burst is one io_uring_submit, and
//    completions are reaped in bulk (io_uring_peek_batch_cqe). Writes to one
//    TAP complete in submission order, so frame order is kept.
//  - RX: the fd is O_NONBLOCK and Receive read(2)s frames until EAGAIN or the
//    burst is full. Not io_uring: several reads in flight on one TAP fd
//    complete out of order (measured; see Receive), and reordering a guest's
//    stream is a correctness bug, not a performance detail.
//  - Options::persist sets TUNSETPERSIST: the interface outlives this process,
//    whether it exits or is killed, with its bridge membership, addresses
//    and MTU, and the next agent that opens the same name attaches to it
//    instead of creating a new one (an agent restart or upgrade then does
//    not take the host's uplink out of its bridge). While no process holds
//    it, its carrier is down and the kernel drops what the bridge sends it,
//    counted in the interface's own TX dropped (`ip -s link show NAME`).
//    Without persist, a device the agent created goes away with its fd; a
//    device someone else made persistent stays as it was found.
//  - notify_fd() is the TAP fd itself: readable when a frame waits, for a
//    dataplane that sleeps in epoll when idle. Never read it directly.
//
// Threading: one thread (the dataplane) calls Receive/Send. counters(),
// name(), link_up() from any thread.
#ifndef NPA_HYPERVISOR_DAEMON_TAP_UPLINK_H_
#define NPA_HYPERVISOR_DAEMON_TAP_UPLINK_H_

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vhost/vhost_device.h"

namespace npa::agent {

// A frame the uplink received. data points into a registered RX slot and
// stays valid until the next Receive call.
struct UplinkFrame {
  virtio_net_hdr_v1 hdr;
  const uint8_t* data;
  uint32_t len;
};

struct UplinkCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;  // dropped: read errors, runts
  uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;  // dropped: no slot, too big, write errors
};

class TapUplink {
 public:
  struct Options {
    std::string name = "npa%d";  // interface name; "%d" lets the kernel number it
    uint32_t mtu = 1500;
    unsigned offloads = 0;       // TUN_F_CSUM | TUN_F_TSO4 | ... (TUNSETOFFLOAD)
    uint16_t rx_depth = 64;      // outstanding reads
    uint16_t tx_depth = 256;     // TX slots (writes in flight)
    bool persist = false;        // TUNSETPERSIST: keep the interface when we exit
  };

  // kInvalidArgument for bad options; kPermissionDenied / kNotFound etc. from
  // the syscalls, each naming the operation and the interface.
  static absl::StatusOr<std::unique_ptr<TapUplink>> Create(Options opts);
  ~TapUplink();
  TapUplink(const TapUplink&) = delete;
  TapUplink& operator=(const TapUplink&) = delete;

  // Up to n received frames. Re-arms the reads of the previous call's frames
  // first, so those frames are invalid once this is called again.
  uint16_t Receive(UplinkFrame* out, uint16_t n);
  // Copy up to n frames (virtio_net_hdr + segments) into TX slots and submit
  // them in one io_uring_submit. Returns frames accepted; the rest were
  // dropped (counted in tx_dropped). A null hdr means a zeroed header.
  uint16_t Send(const PacketRef* pkts, uint16_t n);

  // From any thread: one frame the agent itself originates (a RARP
  // announcement), written at once with write(2) and a zeroed vnet header on
  // the non-blocking TAP fd, instead of waiting for the dataplane's next
  // loop: a switch must learn a migrated guest's port within a millisecond
  // of its path going live, and a handoff to a dataplane that sleeps or waits
  // for a CPU can take longer. Not ordered with Send's frames in flight (an
  // announcement needs no order). Counted in tx_packets/tx_bytes (or
  // tx_dropped). kInvalidArgument for a runt or a frame over frame_room();
  // kUnavailable when the TAP's queue is full (EAGAIN); kInternal otherwise.
  absl::Status SendDirect(std::span<const uint8_t> frame);

  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }
  // True when the interface existed before Create (a persistent TAP an
  // earlier agent or the operator left), false when Create made it.
  bool attached_existing() const { return attached_existing_; }
  int notify_fd() const { return tap_.get(); }
  // IFF_UP and IFF_RUNNING (carrier) as the kernel reports them now.
  bool link_up() const;
  uint32_t frame_room() const { return slot_size_ - kNetHdrLen; }
  UplinkCounters counters() const;

 private:
  TapUplink() = default;
  absl::Status Init(const Options& opts);
  void Reap();
  uint8_t* Slot(uint32_t i) const { return mem_ + static_cast<size_t>(i) * slot_size_; }
  void Add(std::atomic<uint64_t>& c, uint64_t v) {
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  std::string name_;
  int ifindex_ = 0;
  bool attached_existing_ = false;
  UniqueFd tap_;
  io_uring ring_{};
  bool ring_ok_ = false;
  uint8_t* mem_ = nullptr;
  size_t mem_size_ = 0;
  uint32_t slot_size_ = 0;
  uint16_t rx_depth_ = 0, tx_depth_ = 0;
  // RX: completed slots not yet handed out, and slots lent to the caller.
  std::vector<uint32_t> tx_free_;  // TX slot indices (absolute)
  unsigned unsubmitted_ = 0;
  // SendDirect's counts: written by any thread (fetch_add), kept apart from
  // the dataplane's single-writer counters so neither loses an update.
  std::atomic<uint64_t> direct_packets_{0}, direct_bytes_{0}, direct_dropped_{0};
  struct {
    std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, rx_dropped{0}, tx_packets{0}, tx_bytes{0},
        tx_dropped{0};
  } c_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_TAP_UPLINK_H_
