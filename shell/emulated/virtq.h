// shell/emulated/virtq.h — driver side of a VIRTIO 1.x split virtqueue (spec 2.7),
// specialised for virtio-net TX and RX rings over npa_buf.
//
//   uint8_t* mem = region.base() + off;                 // VringBytes(1024) bytes
//   TxVirtq tx;
//   NPA_RETURN_IF_ERROR(tx.Init(mem, 1024, &pool, features, kick_fd));
//   // tell the device tx.addrs() (SET_VRING_ADDR), then:
//   uint16_t sent = tx.Burst(bufs, n, &counters);
//
// Fast-path design (the device runs on another core):
//  - A frame's head descriptor id equals its avail-ring slot whenever that
//    descriptor is free, so avail->ring[] entries are written once and stay
//    clean in the device's cache (the in-order case costs no avail-ring
//    stores at all). cookie_[] tracks which descriptors are in use, so
//    out-of-order completions still work: a busy slot takes any free id and
//    the avail entry is rewritten only then.
//  - used->idx is read once per burst (acquire); avail->idx is published once
//    per burst (release); at most one kick per burst, only when the device
//    has not set VRING_USED_F_NO_NOTIFY.
//  - Nothing from the shared ring is trusted: used ids and lengths are
//    checked before use; a bad entry is counted and skipped. Buffer
//    pointers come from the private cookie_ table, never from the ring, and
//    every free goes through BufPool's checks (slot, not already free). The
//    RX header is bounded (offload.h DecodeRxHdr): a checksum span outside
//    the frame or an impossible GSO drops the frame (rx_bad, rx_dropped).
//
// Packed rings (VIRTIO 1.1 2.8): when `features` given to Init include
// VIRTIO_F_RING_PACKED the same objects drive a packed ring instead; the
// public calls test that once per burst and go to the Packed* members
// (packed_virtq.cc, which describes the packed design). The split code
// above is otherwise untouched. VIRTIO_F_RING_EVENT_IDX in `features`
// turns on event-index notification suppression for either kind (2.7.7.2,
// 2.7.10, 2.8.10).
//
// Not thread-safe: one owning thread per queue (shell.h).
#ifndef NPA_SHELL_EMULATED_VIRTQ_H_
#define NPA_SHELL_EMULATED_VIRTQ_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "npa/virtio_ring.h"
#include "shell/buf_pool.h"
#include "shell/path.h"

namespace npa::shell {

// Split: the three parts. Packed: desc = the descriptor ring, avail = the
// driver event suppression area, used = the device's (vhost-user
// SET_VRING_ADDR carries them in those fields for a packed ring).
struct VringAddrs {
  uint64_t desc, avail, used;
};

// Bytes needed for one ring of `size` entries laid out by Init (desc table,
// avail ring on its own cache lines, used ring on its own page). A packed
// ring of the same size fits in the same bytes (its two event areas sit
// where the avail and used rings would).
size_t VringBytes(uint16_t size);

class VirtqBase {
 public:
  VirtqBase() = default;
  VirtqBase(const VirtqBase&) = delete;
  VirtqBase& operator=(const VirtqBase&) = delete;

  // mem: VringBytes(size) zeroed bytes, 4096-aligned, in a shared region.
  // Split: size a power of two <= 32768; packed: any size 1..32768.
  absl::Status Init(uint8_t* mem, uint16_t size, BufPool* pool, uint64_t features, int kick_fd);

  VringAddrs addrs() const;
  uint16_t size() const { return size_; }
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t last_used() const { return last_used_; }
  uint16_t num_free() const { return num_free_; }
  uint16_t in_flight() const { return static_cast<uint16_t>(size_ - num_free_); }
  bool packed() const { return packed_; }
  bool event_idx() const { return event_idx_; }
  // Where a back end starts serving this ring (SET_VRING_BASE) if it
  // starts now: split, the avail index; packed, npa_vring_packed_base of
  // the next slot and its wrap counter (0x8000 for a new ring).
  uint16_t base() const;
  // Packed: the device's used position, read from the ring (the used
  // descriptors the device wrote beyond ours, acquire), as
  // npa_vring_packed_base encodes it: where a replacement back end must
  // resume after this one died. Control thread; exact once the device
  // stopped writing.
  uint16_t PackedDeviceUsedBase() const;
  // Packed: descriptors the device has not marked used (control thread).
  uint16_t PackedDeviceInFlight() const;
  // Device wrote something impossible (used idx ran more than size ahead).
  bool broken() const { return broken_; }
  // The pool buffers come from and go back to (the queue's; owner thread).
  BufPool* pool() const { return pool_; }

  // Suppress (false) or request (true) used-buffer notifications: clears or
  // sets VRING_AVAIL_F_NO_INTERRUPT, then a full fence so a caller's next
  // read of used->idx cannot be ordered before the flag store.
  void SetInterrupt(bool enable);

  // Return every buffer still owned by the ring to the pool (after the
  // device stopped: GET_VRING_BASE, or close).
  void ReleaseAll();

 protected:
  uint16_t FindFree();
  void Publish(uint16_t idx, QueueCounters* c);
  void Kick(QueueCounters* c);
  // ---- split producer state in locals for a loop (virtq_internal.h)
  void Unchain(uint16_t id);
  struct SplitProducer;
  SplitProducer LoadSplit() const;
  // ---- packed (packed_virtq.cc)
  struct PackedProducer;
  PackedProducer LoadProducer() const;
  void StoreProducer(const PackedProducer& p);
  absl::Status PackedInit(uint8_t* mem);
  void PackedSetInterrupt(bool enable);
  // Write one descriptor at the next slot; the burst's first flags store
  // is held back for PackedPublish (2.8.21.3.1).
  void PackedWrite(uint64_t addr, uint32_t len, uint16_t id, uint16_t flags);
  void PackedPublish(QueueCounters* c);
  // Classify the slot at the used position: 1 used, 0 not yet, -1 a state
  // no device may write (counted; the queue goes inert).
  int PackedPoll(uint16_t* id, uint32_t* len) const;
  void PackedAdvanceUsed(uint16_t n);
  void PackedFreeId(uint16_t id);

  // ---- read-mostly (set at Init)
  npa_vring_desc* desc_ = nullptr;
  npa_vring_avail* avail_ = nullptr;
  npa_vring_used* used_ = nullptr;
  npa_buf** cookie_ = nullptr;      // per descriptor id: owner buffer, null = free
  uint16_t* shadow_ = nullptr;      // avail->ring[] as we last wrote it
  uint16_t* chain_next_ = nullptr;  // private copy of desc.next (never re-read)
  uint16_t* chain_len_ = nullptr;   // descriptors in the chain headed by id
  BufPool* pool_ = nullptr;
  uint64_t features_ = 0;
  int kick_fd_ = -1;
  uint16_t size_ = 0, mask_ = 0;
  std::unique_ptr<uint8_t[]> priv_;
  // ---- producer side (avail ring)
  alignas(64) uint16_t avail_idx_ = 0;
  uint16_t num_free_ = 0;
  uint16_t free_hint_ = 0;
  // ---- consumer side (used ring)
  alignas(64) uint16_t last_used_ = 0;
  bool broken_ = false;
  // ---- packed ring (2.8) and event index; avail_idx_ / last_used_ are
  // then slot numbers 0..size-1 with these wrap counters (2.8.1).
  bool packed_ = false;
  bool event_idx_ = false;
  bool avail_wrap_ = true, used_wrap_ = true;
  npa_vring_packed_desc* pdesc_ = nullptr;
  npa_vring_packed_desc_event* driver_event_ = nullptr;
  const npa_vring_packed_desc_event* device_event_ = nullptr;
  uint16_t* free_ids_ = nullptr;  // stack of buffer ids not in use (private)
  uint16_t free_top_ = 0;
  uint16_t pk_head_ = 0xffff;     // slot whose flags store publishes the burst
  uint16_t pk_head_flags_ = 0;
  uint16_t pk_added_ = 0;         // descriptors written since the last publish
};

class TxVirtq : public VirtqBase {
 public:
  // Takes up to n frames; returns how many the ring took (frames with an
  // impossible offload request are taken, freed and counted in tx_bad). A
  // TSO frame the back end cannot segment (no HOST_TSO4/6 or no CSUM) is
  // segmented here (tso.h) into frames from the pool; counters count it
  // once, as the application's frame.
  uint16_t Burst(npa_buf** bufs, uint16_t n, QueueCounters* c);
  // Reclaim completed frames to the pool; reads used->idx once.
  uint32_t Reclaim(QueueCounters* c);

 private:
  bool EnqueueChain(npa_buf* b, uint16_t* idx, QueueCounters* c);
  // One frame that is not the fast path's (an offload request, a chain, no
  // header room); false: stop the burst, b stays the caller's.
  bool BurstOne(npa_buf* b, uint16_t* idx, uint16_t* extra, uint64_t* bytes, QueueCounters* c);
  // False: no room (ring or pool), b stays the caller's. *extra += the
  // frames beyond one that b became.
  bool EnqueueSoftwareTso(npa_buf* b, uint16_t* idx, QueueCounters* c, uint16_t* extra);
  bool HardwareTso(const npa_buf* b) const;
  void PlaceOne(npa_buf* b, uint16_t* idx);
  // packed_virtq.cc
  uint16_t PackedBurst(npa_buf** bufs, uint16_t n, QueueCounters* c);
  uint32_t PackedReclaim(QueueCounters* c);
  void PackedPlaceOne(npa_buf* b, uint16_t* frames);
  bool PackedEnqueueChain(npa_buf* b, uint16_t* frames, QueueCounters* c);
};

class RxVirtq : public VirtqBase {
 public:
  // mrg: VIRTIO_NET_F_MRG_RXBUF negotiated (frames may span buffers).
  void set_mergeable(bool mrg) { mrg_ = mrg; }
  // Strip an outer 802.1Q tag into vlan_tci (virtio-net cannot).
  void set_strip_vlan(bool on) { strip_vlan_ = on; }
  uint16_t Burst(npa_buf** bufs, uint16_t n, QueueCounters* c);
  // Post free pool buffers to every free descriptor. Returns how many.
  uint32_t Refill(QueueCounters* c);
  // True when the device has certainly used nothing since the last Burst:
  // a caller that only polls this ring in passing (the VF path's check for
  // frames the agent delivered before it steered the MAC away) skips Burst
  // and its call on that one load. Split: used->idx still at ours; packed:
  // the used position's USED bit is not our wrap counter (2.8.1; a used
  // descriptor has it equal). Relaxed: a false "not idle" only costs a
  // Burst, which re-reads with acquire; it never says idle when a used
  // entry is there.
  bool Idle() const {
    if (packed_) [[unlikely]] {
      const uint16_t f = __atomic_load_n(&pdesc_[last_used_].flags, __ATOMIC_RELAXED);
      return ((f & NPA_VRING_PACKED_F_USED) != 0) != used_wrap_;
    }
    return __atomic_load_n(&used_->idx, __ATOMIC_RELAXED) == last_used_;
  }

 private:
  // A frame spanning num_buffers used entries; false: wait (not all there).
  bool TakeMerged(uint16_t nb, uint16_t avail, npa_buf** out, uint64_t* bytes, QueueCounters* c);
  npa_buf* TakeUsed(uint32_t id);
  // packed_virtq.cc
  uint16_t PackedBurst(npa_buf** bufs, uint16_t n, QueueCounters* c);
  uint32_t PackedRefill(QueueCounters* c);
  // A frame over nb used descriptors; false: not all there yet.
  bool PackedTakeMerged(uint16_t nb, npa_buf** out, uint64_t* bytes, QueueCounters* c);
  bool mrg_ = false;
  bool strip_vlan_ = false;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_EMULATED_VIRTQ_H_
