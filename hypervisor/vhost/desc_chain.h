// hypervisor/vhost/desc_chain.h — the split-virtqueue descriptor chain walker
// (VIRTIO 1.x §2.7.5, §2.7.13) and the virtio-net header split (§5.1.6).
//
// Pure functions over a descriptor table the guest can rewrite at any moment:
// every descriptor is read exactly once into locals, every index and buffer
// is checked before use, so the result (host buffers inside the guest's own
// regions) stays valid whatever the guest does afterwards. Fuzzed by
// tests/fuzz/desc_chain_fuzz.cc.
//
//   ChainBuf bufs[kMaxFrameSegs + 1]; ChainWalk w; ChainError err;
//   if (!WalkChain(desc, num, head, *mem, &hint, ChainDir::kReadable, bufs,
//                  std::size(bufs), &w, &err)) broken(err.Describe());
#ifndef NPA_HYPERVISOR_VHOST_DESC_CHAIN_H_
#define NPA_HYPERVISOR_VHOST_DESC_CHAIN_H_

#include <cstdint>
#include <string>

#include "hypervisor/vhost/guest_memory.h"
#include "hypervisor/vhost/vhost_device.h"
#include "npa/virtio_ring.h"

namespace npa::agent {

// Longest chain walked. VIRTIO allows chains up to the queue size, but no
// virtio-net driver needs more than MAX_SKB_FRAGS + 2 (19 on Linux)
// descriptors; a longer chain (zero-length descriptors posted to burn the
// agent's time) is reported as truncated after this many: TX drops it
// (counted), RX uses only the buffers stored.
inline constexpr uint32_t kMaxChainDescs = 64;

// Limits shared by the split (virtqueue.h) and packed (packed_virtqueue.h) queues.
inline constexpr uint32_t kMaxRingSize = 32768;  // §2.7: Queue Size <= 32768
// Largest frame moved either way: 64 KiB (TSO) plus an Ethernet+VLAN header.
inline constexpr uint32_t kMaxFrameLen = 65536 + 18;
// Descriptors one RX frame may take over all its chains (mergeable buffers):
// a guest posting tiny RX buffers gets its frames dropped (counted), not
// hundreds of chains walked per frame. 512-byte buffers still hold a 64 KiB
// TSO frame.
inline constexpr uint32_t kMaxRxDescsPerFrame = 128;

// TX chains must be device-readable only, RX chains device-writable only
// (virtio-net uses no mixed chains).
enum class ChainDir : uint8_t { kReadable, kWritable };

struct ChainBuf {
  uint8_t* host;  // inside the guest's mapping
  uint32_t len;   // > 0 (zero-length descriptors are skipped)
};

struct ChainWalk {
  uint16_t nbufs;      // buffers stored (<= capacity)
  uint16_t ndesc;      // descriptors walked
  bool truncated;      // the chain had more non-empty buffers than capacity
  uint64_t total_len;  // bytes in all buffers, stored or not
};

struct ChainError {
  enum Kind : uint8_t {
    kHeadOutOfRange,
    kNextOutOfRange,
    kLoop,
    kOutsideMemory,
    kWrongDirection,
    kIndirect,
    // Packed ring (§2.8) only:
    kNotAvailable,  // a chain continues into a slot the driver did not make available
    kUsedFlags,     // the head slot carries AVAIL == USED == the current wrap counter
    kTooLong,       // a packed chain longer than kMaxChainDescs
    kPastFree,      // a packed chain runs into slots the device still holds
  };
  Kind kind;
  uint16_t desc;   // descriptor index at fault
  uint16_t other;  // the offending head/next index where relevant
  uint64_t addr;
  uint32_t len;
  // "descriptor 17 addr 0x1000 len 4096 is outside guest memory"
  std::string Describe() const;
};

// Walks the chain starting at head in a table of ring_size descriptors
// (power of two, validated by the caller). Checks head < ring_size, every
// next < ring_size, at most ring_size descriptors (a longer chain loops);
// stops after kMaxChainDescs descriptors with truncated set,
// each non-empty buffer inside ONE guest region, the direction flag, and no
// VRING_DESC_F_INDIRECT (never offered). Stores up to cap buffers. Returns
// false with *err filled on a violation.
bool WalkChain(const npa_vring_desc* table, uint32_t ring_size, uint32_t head,
               const GuestMemory& mem, uint32_t* hint, ChainDir dir, ChainBuf* bufs, uint16_t cap,
               ChainWalk* walk, ChainError* err);

// ---- Packed virtqueue (VIRTIO 1.1+ §2.8) ----------------------------------

// True when a packed descriptor's flags say "available in the lap whose wrap
// counter is `wrap`" (§2.8.1: AVAIL == wrap, USED != wrap).
inline bool PackedAvail(uint16_t flags, bool wrap) {
  const bool a = (flags & NPA_VRING_PACKED_F_AVAIL) != 0;
  const bool u = (flags & NPA_VRING_PACKED_F_USED) != 0;
  return a == wrap && u != wrap;
}

enum class PackedWalk : uint8_t { kEmpty, kOk, kError };

// Walks the packed chain whose head is ring slot `start` in the lap with
// wrap counter `wrap`, in a ring of ring_size (1..32768, any value) slots.
// max_slots: slots the device may read (ring_size minus what it holds).
// kEmpty: the head is not available (or max_slots is 0), nothing read
// beyond the head's flags. kOk: *walk and bufs as WalkChain, *id the buffer
// id (§2.8.13: from the chain's last descriptor), walk->ndesc the slots the
// chain takes. kError: *err says why. Unlike a split chain, a packed chain
// cannot be skipped without walking it (its length decides where the next
// one starts), so one longer than kMaxChainDescs is a violation, not a drop.
// Each descriptor is read once (volatile), flags first with acquire
// (§2.8.21: the driver writes a head's flags after the rest of the chain).
PackedWalk WalkPackedChain(const npa_vring_packed_desc* ring, uint32_t ring_size, uint32_t start,
                           bool wrap, uint32_t max_slots, const GuestMemory& mem, uint32_t* hint,
                           ChainDir dir, ChainBuf* bufs, uint16_t cap, ChainWalk* walk,
                           uint16_t* id, ChainError* err);

// The byte stream of one RX frame: the 12-byte header, then the segments.
// Shared by the split and the packed RX paths.
struct RxSource {
  const uint8_t* hdr;
  uint32_t hdr_left;
  const iovec* segs;
  uint16_t nsegs;
  uint16_t seg = 0;
  size_t off = 0;
  uint32_t left;  // bytes still to copy (header included)

  // Copies up to len bytes to dst; returns bytes copied.
  uint32_t CopyTo(uint8_t* dst, uint32_t len);
};

// The stream of frame p: its header (p.hdr, or zeros) copied into *hdr with
// num_buffers 1 (EnqueueRx rewrites it for a frame that spans buffers),
// then its segments. *hdr must outlive the source.
inline RxSource FrameSource(const PacketRef& p, npa_virtio_net_hdr_v1* hdr) {
  if (p.hdr != nullptr) {
    *hdr = *p.hdr;
  } else {
    *hdr = npa_virtio_net_hdr_v1{};
  }
  hdr->num_buffers = 1;
  return RxSource{reinterpret_cast<const uint8_t*>(hdr), kNetHdrLen, p.segs, p.nsegs, 0, 0,
                  kNetHdrLen + p.len};
}

// Where stream byte `pos` of a chain's buffers landed (nullptr: past them).
uint8_t* StreamByte(const ChainBuf* bufs, uint16_t nbufs, uint32_t pos);

// Splits a TX chain's buffers into the 12-byte virtio_net_hdr (copied out,
// may span buffers) and frame segments. false when the chain is shorter than
// the header or the frame needs more than kMaxFrameSegs segments: a legal but
// unusable frame the caller drops and returns to the guest.
bool SplitNetHdr(const ChainBuf* bufs, uint16_t nbufs, GuestFrame* frame);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_DESC_CHAIN_H_
