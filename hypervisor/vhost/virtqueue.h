// hypervisor/vhost/virtqueue.h — device side of one split virtqueue
// (VIRTIO 1.x §2.7) for virtio-net: TX (guest -> agent) peek/release and RX
// (agent -> guest) enqueue with optional mergeable buffers (§5.1.6.3).
//
// No locking inside: the owner (VhostSession) serialises the control thread
// and the dataplane around each call. No syscalls except one eventfd write
// per burst when the guest asked for interrupts. A guest that violates the
// ring protocol makes a call return with *violation set; the queue then stays
// inert until reconfigured.
//
//   VirtQueue q;
//   q.Configure(mem, {.num = 256, .desc = ..., .avail = ..., .used = ...}, base);
//   uint16_t n = q.PeekTx(frames, 32, &v);  q.ReleaseTx(n);
#ifndef NPA_HYPERVISOR_VHOST_VIRTQUEUE_H_
#define NPA_HYPERVISOR_VHOST_VIRTQUEUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hypervisor/vhost/desc_chain.h"
#include "hypervisor/vhost/guest_memory.h"
#include "hypervisor/vhost/packed_virtqueue.h"
#include "hypervisor/vhost/vhost_device.h"
#include "npa/virtio_ring.h"

namespace npa::agent {

struct RingLayout {
  uint32_t num;  // split: power of two, 1..kMaxRingSize; packed: 1..kMaxRingSize
  npa_vring_desc* desc;
  npa_vring_avail* avail;
  npa_vring_used* used;
  // VIRTIO_F_RING_PACKED acked: the ring is `packed` (desc/avail/used unused).
  bool is_packed = false;
  PackedRingLayout packed{};
};

class VirtQueue {
 public:
  // Start serving the ring from avail index `base` (SET_VRING_BASE). The
  // used index we write continues from base too: for in-order device use
  // (ours) used->idx == last_avail_idx whenever nothing is in flight.
  // A packed layout (layout.is_packed) hands every later call to a
  // PackedVirtQueue: one branch per call (per burst), none per frame, and
  // the split fast path stays as it was. base is then
  // npa_vring_packed_base(idx, wrap). event_idx: VIRTIO_F_RING_EVENT_IDX
  // acked (interrupts per used_event / the driver's event suppression).
  void Configure(std::shared_ptr<const GuestMemory> mem, const RingLayout& layout, uint16_t base,
                 bool mergeable, int call_fd, bool event_idx = false);
  // Re-point the ring after a new memory table (same guest addresses).
  void Remap(std::shared_ptr<const GuestMemory> mem, const RingLayout& layout);
  void SetCallFd(int fd) {
    call_fd_ = fd;
    if (packed_) packed_->SetCallFd(fd);
  }
  // Stop: returns the avail index to report in GET_VRING_BASE. In-flight TX
  // frames (peeked, not released) are NOT counted as consumed, so a restart
  // re-reads them instead of losing them; their late ReleaseTx is ignored.
  uint16_t Stop();
  bool configured() const { return packed_mode_ ? packed_->configured() : configured_; }
  bool packed() const { return packed_mode_; }
  void set_idle_notify(bool want_kicks);

  // TX: up to n frames. *violation non-empty => ring protocol violation.
  // desc_budget (optional): no new chain is started once *desc_budget
  // descriptors were walked in this call; *desc_budget goes down by what was
  // walked. Chains longer than kMaxChainDescs are dropped (tx_dropped).
  uint16_t PeekTx(GuestFrame* out, uint16_t n, QueueCounters* c, std::string* violation,
                  uint32_t* desc_budget = nullptr);
  void ReleaseTx(uint16_t n);
  // RX: copy frames in. Returns how many of pkts it took, a prefix: each
  // delivered, or dropped because no chain could ever hold it (empty,
  // longer than kMaxFrameLen, or longer than one chain without
  // MRG_RXBUF; counted in rx_dropped). It stops at the first frame that
  // finds the ring full; the rest are dropped and counted with
  // RxFull::kDrop, or stay the caller's, uncounted, with RxFull::kKeep
  // (the caller offers them again: loopback's backpressure).
  uint16_t EnqueueRx(const PacketRef* pkts, uint16_t n, QueueCounters* c, std::string* violation,
                     RxFull full = RxFull::kDrop);

  uint16_t in_flight() const {
    return packed_mode_ ? packed_->in_flight() : static_cast<uint16_t>(pend_wr_ - pend_rd_);
  }

 private:
  struct Pending {
    uint16_t head;
    bool dropped;  // returned to the guest without being shown to the caller
  };
  // Acquire-loads avail->idx and checks it did not run ahead of us by more
  // than the ring holds. Returns entries available, or -1 on a violation.
  int32_t AvailEntries(std::string* violation);
  // The same check on an index the caller already loaded (with acquire).
  int32_t CountAvail(uint16_t idx, std::string* violation);
  void PushUsed(uint16_t head, uint32_t len);
  void PublishUsedAndNotify();

  bool configured_ = false;
  std::shared_ptr<const GuestMemory> mem_;
  RingLayout ring_{};
  uint32_t mask_ = 0;
  bool mergeable_ = false;
  int call_fd_ = -1;
  uint32_t hint_ = 0;
  uint16_t last_avail_ = 0;   // next avail entry to read
  uint16_t used_shadow_ = 0;  // next used slot; published to used->idx per burst
  uint16_t used_published_ = 0;
  bool idle_notify_ = false;
  bool event_idx_ = false;
  // The packed implementation, made on the first packed Configure.
  bool packed_mode_ = false;
  std::unique_ptr<PackedVirtQueue> packed_;
  std::vector<Pending> pending_;  // TX chains read from avail, not yet used (ring of num)
  uint32_t pend_rd_ = 0, pend_wr_ = 0;
  // Frames handed out before a Stop(): their ReleaseTx is swallowed.
  uint32_t orphaned_ = 0;
  // Old mappings that in-flight frames still point into, after the control
  // thread installed a new memory table (mem_ itself keeps the current one
  // alive); no shared_ptr traffic on the fast path.
  std::vector<std::shared_ptr<const GuestMemory>> holds_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_VIRTQUEUE_H_
