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

// Splits a TX chain's buffers into the 12-byte virtio_net_hdr (copied out,
// may span buffers) and frame segments. false when the chain is shorter than
// the header or the frame needs more than kMaxFrameSegs segments: a legal but
// unusable frame the caller drops and returns to the guest.
bool SplitNetHdr(const ChainBuf* bufs, uint16_t nbufs, GuestFrame* frame);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_DESC_CHAIN_H_
