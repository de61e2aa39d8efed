// shell/emulated/virtq_internal.h — what virtq.cc and virtq_rx.cc (split
// rings) and packed_virtq.cc (packed rings) share: the ring memory layout,
// the RX buffer size, the batching thresholds and each ring kind's producer
// state in locals. Not for other users.
#ifndef NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_
#define NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "npa/buf.h"
#include "npa/virtio_ring.h"
#include "shell/offload.h"
#include "shell/emulated/virtq.h"

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

// A one-buffer RX frame of `len` bytes after the header h (both ring kinds):
// the buffer's fields set and the header's offload facts decoded. false: the
// header is impossible (offsets outside the frame, a bad GSO; offload.h
// DecodeRxHdr): the buffer went back to the pool, counted bad and dropped.
inline bool FinishRxFrame(npa_buf* b, const npa_virtio_net_hdr_mrg_rxbuf* h, uint32_t len,
                          BufPool* pool, QueueCounters* c) {
  b->next = nullptr;
  b->pkt_len = len;
  b->data_len = static_cast<uint16_t>(len);
  b->data_off = NPA_BUF_DATA_OFF;
  b->nb_segs = 1;
  // flags and gso_type are the first two bytes: one load for the common
  // "nothing to report" case.
  uint16_t fg;
  memcpy(&fg, h, 2);
  if (NPA_LIKELY(fg == 0)) {
    b->ol_flags = 0;
    return true;
  }
  if (NPA_LIKELY(DecodeRxHdr(*h, len, b))) return true;
  pool->FreeSeg(b);
  QueueCounters::Add(c->rx_bad, 1);
  QueueCounters::Add(c->rx_dropped, 1);
  return false;
}

// A mergeable RX frame being gathered (both ring kinds; VIRTIO 1.x
// 5.1.6.4): only the first buffer carries the header, the others are filled
// from their descriptor's start. Add each buffer as it is taken (nullptr:
// the ring gave no buffer for that position), then Finish.
struct RxChain {
  npa_buf* head = nullptr;
  npa_buf* tail = nullptr;
  uint32_t pkt_len = 0;
  bool bad = false;

  void Add(npa_buf* b, uint32_t len) {
    if (b == nullptr) {
      bad = true;
      return;
    }
    const uint32_t hdr = head == nullptr ? kNetHdrLen : 0;
    const bool fits = len >= hdr && len <= kRxBufLen;
    bad |= !fits;
    b->data_off = static_cast<uint16_t>(NPA_BUF_DATA_OFF - kNetHdrLen + hdr);
    b->data_len = static_cast<uint16_t>(fits ? len - hdr : 0);
    b->next = nullptr;
    b->nb_segs = 1;
    b->ol_flags = 0;
    pkt_len += b->data_len;
    if (head == nullptr) {
      head = b;
    } else {
      tail->next = b;
      head->nb_segs++;
    }
    tail = b;
  }

  // The header is decoded once the frame's length is known: its checksum
  // span is bounded by the whole frame, not the first buffer. *out is the
  // frame, or nullptr when it was dropped (its buffers back in the pool,
  // counted rx_bad and rx_dropped).
  void Finish(BufPool* pool, QueueCounters* c, npa_buf** out, uint64_t* bytes) {
    if (!bad && head != nullptr &&
        !DecodeRxHdr(*reinterpret_cast<const npa_virtio_net_hdr_mrg_rxbuf*>(
                         reinterpret_cast<uint8_t*>(head) + NPA_BUF_DATA_OFF - kNetHdrLen),
                     pkt_len, head))
      bad = true;
    if (bad || head == nullptr) {
      QueueCounters::Add(c->rx_bad, 1);
      QueueCounters::Add(c->rx_dropped, 1);
      if (head) pool->FreeFrame(head);
      *out = nullptr;
      return;
    }
    head->pkt_len = pkt_len;
    *bytes += pkt_len;
    *out = head;
  }
};

// The end of an RX burst (both ring kinds): software VLAN strip, counters.
inline void EndRxBurst(npa_buf** bufs, uint16_t got, uint64_t bytes, bool strip_vlan,
                       QueueCounters* c) {
  if (NPA_UNLIKELY(strip_vlan))
    for (uint16_t k = 0; k < got; k++) StripVlan(bufs[k]);
  if (got) {
    QueueCounters::Add(c->rx_packets, got);
    QueueCounters::Add(c->rx_emulated, got);
    QueueCounters::Add(c->rx_bytes, bytes);
  }
}

// ---- packed rings (packed_virtq.cc, packed_virtq_rx.cc)

constexpr uint16_t kNoHead = 0xffff;

inline uint16_t WrapFlags(bool wrap) {
  // 2.8.1: available = AVAIL equal to the driver wrap counter, USED not.
  return wrap ? NPA_VRING_PACKED_F_AVAIL : NPA_VRING_PACKED_F_USED;
}

// A slot at our used position, seen with used wrap counter `wrap` (2.8.1):
// 1 used (AVAIL = USED = wrap), 0 not yet (USED != wrap: still available,
// or last lap's), -1 USED = wrap without AVAIL, which no device writes.
inline int Classify(uint16_t f, bool wrap) {
  const uint16_t both = NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED;
  if ((f & both) == (wrap ? both : 0)) return 1;
  return ((f & NPA_VRING_PACKED_F_USED) != 0) == wrap ? -1 : 0;
}


}  // namespace npa::shell::virtq_internal

namespace npa::shell {

// The split producer's state in locals for a loop (as PackedProducer for
// packed rings): the frame-header, descriptor and pool stores in a burst
// could alias the members as far as the compiler knows, and it would reload
// each of them for every frame. The pointers never change after Init;
// num_free is the one member a loop must store back (and reload after any
// call that uses num_free_ itself). Put is the one place a split ring's
// single-descriptor buffer is posted.
struct VirtqBase::SplitProducer {
  npa_vring_desc* desc;
  npa_buf** cookie;
  uint16_t* shadow;
  uint16_t* aring;
  uint16_t mask;
  uint16_t num_free;
  // The descriptor (id == slot unless that one is still in use), the
  // avail entry (rewritten only when the id differs from last time), the
  // accounting. num_free > 0 is the caller's check. chain_len[id] is
  // already 1 (Init, Unchain). kFlags 0 (TX) is not stored either: a free
  // split descriptor's flags are 0 (Init's zeroed ring, Unchain). Only a
  // device that writes the descriptor table (which it must not, 2.7.5)
  // could change them, and it then misreads its own ring: the shell reads
  // neither flags nor next back, and checks every used entry as before.
  template <uint16_t kFlags>
  inline void Put(VirtqBase* q, uint16_t* idx, npa_buf* b, uint64_t addr, uint32_t len) {
    const uint16_t slot = static_cast<uint16_t>(*idx & mask);
    uint16_t id = slot;
    if (NPA_UNLIKELY(cookie[id] != nullptr)) id = q->FindFree();
    npa_vring_desc* d = &desc[id];
    d->addr = addr;
    d->len = len;
    if constexpr (kFlags != 0) d->flags = kFlags;
    cookie[id] = b;
    if (NPA_UNLIKELY(shadow[slot] != id)) {
      aring[slot] = id;
      shadow[slot] = id;
    }
    (*idx)++;
    num_free--;
  }
};

inline VirtqBase::SplitProducer VirtqBase::LoadSplit() const {
  return {desc_, cookie_, shadow_, avail_->ring, mask_, num_free_};
}

// The producer side's state in locals for a loop (the pool's stores would
// make the compiler reload members after each buffer); Put is the one
// place a descriptor is written. Load, Put..., Store.
struct VirtqBase::PackedProducer {
  npa_vring_packed_desc* ring;
  uint16_t size, pos, head, head_flags, added;
  bool wrap;
  inline void Put(uint64_t addr, uint32_t len, uint16_t id, uint16_t flags) {
    npa_vring_packed_desc* d = &ring[pos];
    d->addr = addr;
    d->len = len;
    d->id = id;  // in every slot of a chain; the device reads the last one's (2.8.13)
    const uint16_t f = static_cast<uint16_t>(flags | virtq_internal::WrapFlags(wrap));
    if (head == virtq_internal::kNoHead) {
      head = pos;  // stored last, in PackedPublish
      head_flags = f;
    } else {
      // The device reads this slot only after the head's, which is stored
      // later with release: relaxed is enough.
      __atomic_store_n(&d->flags, f, __ATOMIC_RELAXED);
    }
    if (++pos == size) {
      pos = 0;
      wrap = !wrap;
    }
    added++;
  }
};

inline VirtqBase::PackedProducer VirtqBase::LoadProducer() const {
  return {pdesc_, size_, avail_idx_, pk_head_, pk_head_flags_, pk_added_, avail_wrap_};
}
inline void VirtqBase::StoreProducer(const PackedProducer& p) {
  avail_idx_ = p.pos;
  avail_wrap_ = p.wrap;
  pk_head_ = p.head;
  pk_head_flags_ = p.head_flags;
  pk_added_ = p.added;
}

// The consumer's steps, inline in both files' loops.
inline int VirtqBase::PackedPoll(uint16_t* id, uint32_t* len) const {
  const npa_vring_packed_desc* d = &pdesc_[last_used_];
  // Acquire pairs with the device's release of the flags (2.8.21.4): id,
  // len and the buffer's bytes are read only after.
  const int r = virtq_internal::Classify(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE), used_wrap_);
  if (r <= 0) return r;
  *id = d->id;
  *len = d->len;
  return 1;
}

inline void VirtqBase::PackedAdvanceUsed(uint16_t n) {
  uint32_t u = last_used_ + n;
  if (u >= size_) {
    u -= size_;
    used_wrap_ = !used_wrap_;
  }
  last_used_ = static_cast<uint16_t>(u);
}

inline void VirtqBase::PackedFreeId(uint16_t id) {
  cookie_[id] = nullptr;
  free_ids_[free_top_++] = id;
  num_free_ = static_cast<uint16_t>(num_free_ + chain_len_[id]);
}

}  // namespace npa::shell

#endif  // NPA_SHELL_EMULATED_VIRTQ_INTERNAL_H_
