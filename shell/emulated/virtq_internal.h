// shell/emulated/virtq_internal.h — what virtq.cc (split rings) and
// packed_virtq.cc (packed rings) share: the ring memory layout, the RX
// buffer size and the batching thresholds. Not for other users.
#ifndef NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_
#define NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_

#include <cstddef>
#include <cstdint>

#include "npa/buf.h"
#include "npa/virtio_ring.h"
#include "shell/offload.h"

#define NPA_LIKELY(x) __builtin_expect(!!(x), 1)
#define NPA_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace npa::shell::virtq_internal {

// Marks descriptors that extend a split TX chain: in use, but not a frame head.
inline npa_buf* const kChainMarker = reinterpret_cast<npa_buf*>(uintptr_t{1});

inline bool IsHead(const npa_buf* c) { return reinterpret_cast<uintptr_t>(c) > 1; }

inline size_t AlignUp(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

// Layout offsets inside a ring's memory (VIRTIO 1.x 2.7: desc 16-byte, avail
// 2-byte, used 4-byte alignment; we give the avail ring its own cache lines
// and the used ring its own page, so driver-written and device-written
// lines never share a cache line). A packed ring (2.8.10, 2.8.13: desc 16,
// event areas 4) puts the driver event area at `avail` and the device's at
// `used`: the same separation, within the same bytes.
struct Layout {
  size_t avail, used, total;
};
inline Layout LayoutFor(uint16_t n) {
  Layout l;
  l.avail = AlignUp(npa_vring_desc_size(n), 64);
  l.used = AlignUp(l.avail + npa_vring_avail_size(n), 4096);  // used_event included
  l.total = AlignUp(l.used + npa_vring_used_size(n), 4096);   // avail_event included
  return l;
}

constexpr uint32_t kRxBufLen = kNetHdrLen + NPA_BUF_DATA_ROOM;  // header lands in headroom
constexpr uint16_t kRxRefillBatch = 32;
constexpr uint16_t kTxFreeThresh = 32;

}  // namespace npa::shell::virtq_internal

#endif  // NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_
