// hypervisor/vhost/vhost_device.h — one vhost-user back-end session (= one guest).
//
// npa-agent is a vhost-user back end (QEMU docs/interop/vhost-user.rst) for
// virtio-net split virtqueues (VIRTIO 1.x §2.7, §5.1). A VhostDevice owns one
// accepted vhost-user connection: it answers the front end's messages on the
// control thread and gives ONE dataplane thread burst access to the guest's
// rings. Everything the guest sends (messages, fds, ring indices, descriptor
// addresses) is hostile until checked; a bad message closes the session, a bad
// ring marks the device broken. Neither ever touches memory outside this
// guest's regions.
//
// Usage (control thread):
//
//   NPA_ASSIGN_OR_RETURN(auto dev, VhostDevice::Create(std::move(conn),
//                                                      {.name = "g1"}));
//   // poll(dev->fd(), POLLIN) ...
//   if (absl::Status s = dev->OnReadable(); !s.ok()) { /* close: drop dev */ }
//
// Usage (dataplane thread, one burst):
//
//   GuestFrame f[32];
//   uint16_t n = dev->PeekTx(qp, f, 32);
//   for (i < n) forward(f[i].hdr, f[i].segs, f[i].nsegs, f[i].len);  // copies
//   dev->ReleaseTx(qp, n);
//   PacketRef in[32] = ...;
//   uint16_t done = dev->EnqueueRx(qp, in, m);   // m - done were dropped
//   if (dev->broken()) { /* tell the control thread to close it */ }
//
// Message order expected from the front end (what DPDK's net_virtio_user and
// QEMU send): SET_OWNER first; GET_FEATURES / GET_PROTOCOL_FEATURES /
// GET_QUEUE_NUM / SET_PROTOCOL_FEATURES may come before it. SET_MEM_TABLE
// before any SET_VRING_ADDR. A vring starts when it has num, addr, base and a
// kick fd (or the NOFD flag); when F_PROTOCOL_FEATURES was negotiated it also
// needs SET_VRING_ENABLE(1). GET_VRING_BASE stops it.
//
// What is offered: split rings only; VERSION_1 (required), MRG_RXBUF, MQ,
// MTU, F_PROTOCOL_FEATURES (+ kOffloadFeatures if the owner opts in);
// protocol features MQ, REPLY_ACK, MTU, STATUS. Not offered (so rejected if
// used): INDIRECT_DESC, EVENT_IDX, packed rings, IN_ORDER, CONFIG,
// CONFIGURE_MEM_SLOTS, dirty logging, IOTLB.
//
// Thread safety: OnReadable / fd / name / Create on the control thread. The
// data-plane calls (PeekTx, ReleaseTx, EnqueueRx, SetIdleNotify, NotifyFds)
// from one dataplane thread at a time. counters(), broken(), broken_reason(),
// num_queue_pairs(), QueueReady(), generation() from any thread. A per-device
// mutex is taken once per burst call (never per packet) and by the control
// thread around state changes; mappings are swapped, not unmapped, under it,
// so frames handed out by PeekTx stay mapped until ReleaseTx.
#ifndef NPA_HYPERVISOR_VHOST_VHOST_DEVICE_H_
#define NPA_HYPERVISOR_VHOST_VHOST_DEVICE_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "include/npa/vhost_user.h"
#include "npa/virtio_ring.h"
// Transitional: the old names for files not yet on npa/virtio_ring.h (see there).
#include "hypervisor/vhost/virtio_abi.h"  // IWYU pragma: keep

namespace npa::agent {

using npa::UniqueFd;

// Most buffers one frame may span (Linux's virtio-net TX uses up to
// MAX_SKB_FRAGS + 2 = 19). A TX chain with more data buffers is dropped
// (counted in tx_dropped) and returned to the guest, not fatal.
inline constexpr uint16_t kMaxFrameSegs = 32;

// The 12-byte header used with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF.
inline constexpr uint32_t kNetHdrLen = sizeof(npa_virtio_net_hdr_v1);
static_assert(sizeof(npa_virtio_net_hdr_v1) == 12, "VIRTIO 1.x §5.1.6 layout");

// Features offered unless Options::features says otherwise.
inline constexpr uint64_t kDefaultFeatures =
    (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF) |
    (1ull << NPA_VIRTIO_NET_F_MQ) | (1ull << NPA_VIRTIO_NET_F_MTU) |
    (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES) |
    // Packed rings (§2.8, packed_virtqueue.h) and event indices (§2.7.7.2,
    // §2.8.10): a front end that does not ack them gets split rings and
    // flag-based notification, as before.
    (1ull << NPA_VIRTIO_F_RING_PACKED) | (1ull << NPA_VIRTIO_F_RING_EVENT_IDX);
// Offloads an owner may add to Options::features when its uplink/switch can
// honour the virtio_net_hdr they imply (TAP with IFF_VNET_HDR does).
inline constexpr uint64_t kOffloadFeatures =
    (1ull << NPA_VIRTIO_NET_F_CSUM) | (1ull << NPA_VIRTIO_NET_F_GUEST_CSUM) |
    (1ull << NPA_VIRTIO_NET_F_HOST_TSO4) | (1ull << NPA_VIRTIO_NET_F_HOST_TSO6) |
    (1ull << NPA_VIRTIO_NET_F_GUEST_TSO4) | (1ull << NPA_VIRTIO_NET_F_GUEST_TSO6);
// Every feature bit this implementation can honour; Options::features must be
// a subset (Create rejects others). No INDIRECT_DESC.
inline constexpr uint64_t kSupportedFeatures = kDefaultFeatures | kOffloadFeatures;

// A frame in guest memory, validated: segs point into the agent's mapping of
// the guest's regions and cover only frame bytes (not the virtio_net_hdr).
// hdr is a copy (the guest may rewrite its own memory at any time; so may the
// frame bytes, which is the guest's problem, never the agent's).
struct GuestFrame {
  npa_virtio_net_hdr_v1 hdr;
  uint32_t len;    // frame bytes = sum of segs[i].iov_len
  uint16_t nsegs;  // 1..kMaxFrameSegs
  uint16_t head;   // descriptor head index (diagnostics)
  iovec segs[kMaxFrameSegs];
};

// A frame to deliver into a guest (from the uplink or another guest). hdr may
// be null (= no offload metadata: a zeroed header with num_buffers filled in).
struct PacketRef {
  const npa_virtio_net_hdr_v1* hdr;
  const iovec* segs;
  uint16_t nsegs;
  uint32_t len;  // sum of segs[i].iov_len
};

// What EnqueueRx does with frames that find the guest's RX ring full: drop
// and count them (a switch), or leave them to the caller, uncounted, to
// offer again (loopback's backpressure, an echo server).
enum class RxFull : uint8_t { kDrop, kKeep };

// rx = agent -> guest (vring 2qp), tx = guest -> agent (vring 2qp+1).
// rx_dropped: EnqueueRx frames that found no room; tx_dropped: guest frames
// that were malformed-but-legal (too many segments, shorter than the header).
struct QueueCounters {
  uint64_t rx_packets, rx_bytes, rx_dropped, tx_packets, tx_bytes, tx_dropped;
};

class VhostDevice {
 public:
  struct Options {
    std::string name;                   // guest name, used in every log line
    uint16_t max_queue_pairs = 16;      // 1..128 (vring index is 8 bits)
    uint64_t features = kDefaultFeatures;  // subset of kSupportedFeatures
    uint32_t mtu = 1500;                // largest frame EnqueueRx accepts = mtu+14+4
    // Reject memory fds not sealed with F_SEAL_SHRINK: a guest that shrinks
    // its memfd after SET_MEM_TABLE would otherwise SIGBUS the agent. Safe
    // to enable for npa's shell if it seals; DPDK/QEMU front ends do not.
    bool require_sealed_memory = false;
    // Most guest memory mapped for this guest (sum of one SET_MEM_TABLE's
    // regions); the agent's --max-guest-memory. Over it, SET_MEM_TABLE fails
    // with a clear error and the session closes.
    uint64_t max_guest_memory = 4ull << 30;
    // GET_VRING_BASE on a TX ring waits this long at most for frames the
    // dataplane peeked and is still delivering, so the base counts them as
    // consumed (a restarted or migrated ring would otherwise send them
    // again). Past it they stay unconsumed: read again after a restart.
    uint32_t stop_release_wait_ms = 100;
  };

  // Takes ownership of an accepted vhost-user connection (made non-blocking
  // and CLOEXEC here). kInvalidArgument for bad options or an invalid fd.
  static absl::StatusOr<std::unique_ptr<VhostDevice>> Create(UniqueFd conn, Options opts);
  // Destroy only after the dataplane stopped calling it (frames it peeked
  // point into mappings this object owns).
  ~VhostDevice();
  VhostDevice(const VhostDevice&) = delete;
  VhostDevice& operator=(const VhostDevice&) = delete;

  // Poll this for POLLIN on the control thread.
  int fd() const;
  // Handles every complete vhost-user message pending on fd() (partial
  // messages are buffered). Non-OK => close the session: the reason is
  // already logged, naming the guest and the message. kAborted when the
  // front end closed the connection.
  absl::Status OnReadable();
  const std::string& name() const;

  // ---- Data plane ---------------------------------------------------------
  // Queue pairs the front end may use (1 without MQ, else up to
  // max_queue_pairs).
  uint16_t num_queue_pairs() const;
  // Both vrings of qp are started and enabled, and the device is not broken.
  bool QueueReady(uint16_t qp) const;
  // Up to n frames from the guest TX ring (vring 2qp+1), in ring order.
  // Frames stay mapped and unchanged-by-the-agent until ReleaseTx. Returns 0
  // for a ring that is not ready or on a violation (then broken() is true).
  // With desc_budget: stops starting new chains once *desc_budget
  // descriptors were walked (a chain in progress completes: at most
  // kMaxChainDescs), and subtracts what it walked. Frames not taken stay in
  // the ring for the next call.
  uint16_t PeekTx(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* desc_budget = nullptr);
  // Return the n oldest peeked frames to the used ring (one used->idx store
  // and at most one call-notify for the burst, unless the guest set
  // VRING_AVAIL_F_NO_INTERRUPT). If the ring was stopped meanwhile, the
  // frames are forgotten (the ring belongs to the front end again).
  void ReleaseTx(uint16_t qp, uint16_t n);
  // Copy frames into guest RX buffers (vring 2qp): with MRG_RXBUF a frame may
  // take several chains (num_buffers set). Returns how many of pkts it took,
  // a prefix, in order: delivered, or dropped as undeliverable (too big for
  // any chain; counted in rx_dropped). The rest found no room (or the ring
  // not ready): counted as dropped with RxFull::kDrop, left to the caller
  // uncounted with kKeep. One call-notify per burst.
  uint16_t EnqueueRx(uint16_t qp, const PacketRef* pkts, uint16_t n, RxFull full = RxFull::kDrop);

  // A data-path violation (bad descriptor, index jump, ...) marks the device
  // broken for good; the owner closes it. The reason names the guest, queue,
  // descriptor and address.
  bool broken() const;
  std::string broken_reason() const;

  QueueCounters counters(uint16_t qp) const;

  // Bumped whenever num_queue_pairs(), QueueReady() or NotifyFds() may have
  // changed (by the control thread). Cheap; for the dataplane to poll.
  uint64_t generation() const;
  // Kick eventfds of the started TX rings (and RX rings, so a dataplane
  // waiting for RX room can sleep too), for epoll when idle: duplicates the
  // caller owns and closes. The device closes its own copy of a kick fd as
  // soon as the guest replaces it (or the ring stops), so a guest cannot
  // make the agent hold retired fds; call again when generation() changed.
  std::vector<UniqueFd> NotifyFds();
  // want_kicks = true clears VRING_USED_F_NO_NOTIFY on the started TX rings
  // (the guest kicks after adding buffers; the dataplane may sleep); false
  // sets it (polling mode, the default). After enabling, re-check PeekTx
  // before sleeping: a frame may have arrived before the guest saw the flag.
  void SetIdleNotify(bool want_kicks);

  // Negotiated virtio features (0 before SET_FEATURES) and MTU from
  // NET_SET_MTU (Options::mtu if none).
  uint64_t features() const;
  uint32_t mtu() const;

  class Impl;

 private:
  explicit VhostDevice(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_VHOST_DEVICE_H_
