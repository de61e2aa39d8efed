// hypervisor/vhost/packed_virtqueue.h — device side of one packed virtqueue
// (VIRTIO 1.1+ §2.8) for virtio-net, with the same contract as the split
// VirtQueue (virtqueue.h), which owns one and dispatches to it once per call
// when the front end acked VIRTIO_F_RING_PACKED.
//
// One ring of descriptors both sides write. The device reads chains in ring
// order from (avail_idx_, avail_wrap_) and, serving in order, writes one used
// descriptor per chain at the chain's first slot (§2.8 "Next Flag: Descriptor
// Chaining" and "In-order Descriptors": a used descriptor
// takes the place of the chain it completes; the next one follows after the
// chain's length), so the used position trails the avail position by exactly
// the slots in flight. The base GET/SET_VRING_BASE carry is
// npa_vring_packed_base(idx, wrap): bits 0..14 the slot, bit 15 the lap's
// wrap counter (DPDK lib/vhost and QEMU encode it so).
//
// Hostile input: every descriptor is read once (flags with acquire), checked
// (availability for this lap, INDIRECT, the direction WRITE flag, address and
// length inside one guest region, chain length <= kMaxChainDescs and within
// the free part of the ring); any violation makes the queue inert until the
// next Configure and names the slot and what was wrong.
//
// No locking inside (the owner serialises calls, as for VirtQueue).
#ifndef NPA_HYPERVISOR_VHOST_PACKED_VIRTQUEUE_H_
#define NPA_HYPERVISOR_VHOST_PACKED_VIRTQUEUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hypervisor/vhost/desc_chain.h"
#include "hypervisor/vhost/guest_memory.h"
#include "hypervisor/vhost/vhost_device.h"
#include "npa/virtio_ring.h"

namespace npa::agent {

struct PackedRingLayout {
  uint32_t num;  // 1..32768, any value (§2.8.2 needs no power of two)
  npa_vring_packed_desc* desc;
  npa_vring_packed_desc_event* driver;  // driver -> device: when to interrupt
  npa_vring_packed_desc_event* device;  // device -> driver: when to kick
};

// Split `base` (npa_vring_packed_base encoding) into slot and wrap counter.
inline uint16_t PackedBaseIdx(uint16_t base) { return base & 0x7fff; }
inline bool PackedBaseWrap(uint16_t base) { return (base >> 15) != 0; }

class PackedVirtQueue {
 public:
  // base: npa_vring_packed_base(idx, wrap); idx must be < layout.num (the
  // session checks it; a larger one is taken modulo num here).
  void Configure(std::shared_ptr<const GuestMemory> mem, const PackedRingLayout& layout,
                 uint16_t base, bool mergeable, bool event_idx, int call_fd);
  void Remap(std::shared_ptr<const GuestMemory> mem, const PackedRingLayout& layout);
  void SetCallFd(int fd) { call_fd_ = fd; }
  // The base to report in GET_VRING_BASE (used position: in-flight TX chains
  // are read again after a restart); late ReleaseTx calls are swallowed.
  uint16_t Stop();
  bool configured() const { return configured_; }
  void set_idle_notify(bool want_kicks);

  uint16_t PeekTx(GuestFrame* out, uint16_t n, QueueCounters* c, std::string* violation,
                  uint32_t* desc_budget);
  void ReleaseTx(uint16_t n);
  uint16_t EnqueueRx(const PacketRef* pkts, uint16_t n, QueueCounters* c, std::string* violation,
                     RxFull full);
  uint16_t in_flight() const { return static_cast<uint16_t>(pend_wr_ - pend_rd_); }
  // Frames handed out before Stop() whose ReleaseTx is still to come.
  uint32_t orphaned() const { return orphaned_; }

  // For tests and logs: the device's positions.
  uint16_t avail_base() const { return npa_vring_packed_base(avail_idx_, avail_wrap_); }
  uint16_t used_base() const { return npa_vring_packed_base(used_idx_, used_wrap_); }

 private:
  struct Pending {
    uint16_t id;     // buffer id (from the chain's last descriptor)
    uint16_t ndesc;  // slots the chain takes
    bool dropped;
  };
  struct Used {
    uint16_t slot, id;
    uint32_t len;
    uint16_t flags;
  };
  // Queue a used descriptor for the chain at the used position; advances it.
  void AddUsed(uint16_t id, uint32_t len, uint16_t ndesc);
  // Writes the queued used descriptors (first one's flags last) and
  // interrupts the driver if its event suppression structure asks for it.
  void FlushUsedAndNotify();
  void Fail(std::string* violation, const ChainError& e);
  void AdvanceAvail(uint16_t ndesc);

  bool configured_ = false;
  bool inert_ = false;  // a violation was seen: nothing more until Configure
  std::shared_ptr<const GuestMemory> mem_;
  PackedRingLayout ring_{};
  bool mergeable_ = false;
  bool event_idx_ = false;
  int call_fd_ = -1;
  uint32_t hint_ = 0;
  uint16_t avail_idx_ = 0, used_idx_ = 0;
  bool avail_wrap_ = true, used_wrap_ = true;
  uint32_t outstanding_ = 0;  // slots read but not yet handed back (<= num)
  // Used position at the last interrupt decision (EVENT_IDX, §2.8.10).
  uint16_t signalled_idx_ = 0;
  bool signalled_wrap_ = true;
  bool want_kicks_ = false;
  std::vector<Used> batch_;
  std::vector<Pending> pending_;  // power-of-two ring >= num
  uint32_t pmask_ = 0;
  uint32_t pend_rd_ = 0, pend_wr_ = 0;
  uint32_t orphaned_ = 0;
  std::vector<std::shared_ptr<const GuestMemory>> holds_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_PACKED_VIRTQUEUE_H_
