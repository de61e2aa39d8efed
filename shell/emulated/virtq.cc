#include "shell/emulated/virtq.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shell/offload.h"
#include "shell/tso.h"
#include "shell/emulated/virtq_internal.h"

namespace npa::shell {
using namespace virtq_internal;  // NOLINT: the layout and thresholds both ring kinds share

size_t VringBytes(uint16_t size) { return LayoutFor(size).total; }

absl::Status VirtqBase::Init(uint8_t* mem, uint16_t size, BufPool* pool, uint64_t features,
                             int kick_fd) {
  packed_ = (features & (1ull << NPA_VIRTIO_F_RING_PACKED)) != 0;
  event_idx_ = (features & (1ull << NPA_VIRTIO_F_RING_EVENT_IDX)) != 0;
  if (packed_) {
    size_ = size;
    pool_ = pool;
    features_ = features;
    kick_fd_ = kick_fd;
    return PackedInit(mem);
  }
  if (size == 0 || (size & (size - 1)) != 0 || size > 32768)
    return absl::InvalidArgumentError(absl::StrCat("ring size ", size, " is not a power of two <= 32768"));
  if (reinterpret_cast<uintptr_t>(mem) % 4096 != 0)
    return absl::InvalidArgumentError("ring memory must be page aligned");
  Layout l = LayoutFor(size);
  memset(mem, 0, l.total);
  desc_ = reinterpret_cast<npa_vring_desc*>(mem);
  avail_ = reinterpret_cast<npa_vring_avail*>(mem + l.avail);
  used_ = reinterpret_cast<npa_vring_used*>(mem + l.used);
  size_ = size;
  mask_ = static_cast<uint16_t>(size - 1);
  pool_ = pool;
  features_ = features;
  kick_fd_ = kick_fd;
  // Private bookkeeping, never in shared memory: the device cannot corrupt it.
  size_t bytes = sizeof(npa_buf*) * size + 3 * sizeof(uint16_t) * size;
  priv_ = std::make_unique<uint8_t[]>(bytes);
  memset(priv_.get(), 0, bytes);
  cookie_ = reinterpret_cast<npa_buf**>(priv_.get());
  shadow_ = reinterpret_cast<uint16_t*>(cookie_ + size);
  chain_next_ = shadow_ + size;
  chain_len_ = chain_next_ + size;
  // Pre-fill avail->ring[i] = i: with id == slot these never change again.
  // chain_len_ is 1 for every descriptor that does not head a TX chain in
  // flight (set back when the chain completes), so posting one buffer
  // never stores it.
  for (uint16_t i = 0; i < size; i++) {
    avail_->ring[i] = i;
    shadow_[i] = i;
    chain_len_[i] = 1;
  }
  avail_idx_ = 0;
  last_used_ = 0;
  num_free_ = size;
  free_hint_ = 0;
  broken_ = false;
  // Polling mode until told otherwise (2.7.10: a hint the device may ignore).
  // With EVENT_IDX the flags stay 0 (2.7.10: the driver then says it through
  // used_event): used_event one behind our position is crossed only after
  // 2^16 more completions.
  if (event_idx_)
    *npa_vring_used_event(avail_, size_) = static_cast<uint16_t>(last_used_ - 1);
  else
    avail_->flags = NPA_VRING_AVAIL_F_NO_INTERRUPT;
  return absl::OkStatus();
}

uint16_t VirtqBase::base() const {
  return packed_ ? static_cast<uint16_t>(npa_vring_packed_base(avail_idx_, avail_wrap_)) : avail_idx_;
}

VringAddrs VirtqBase::addrs() const {
  if (packed_)  // vhost-user SET_VRING_ADDR for a packed ring: desc, driver area, device area
    return {reinterpret_cast<uintptr_t>(pdesc_), reinterpret_cast<uintptr_t>(driver_event_),
            reinterpret_cast<uintptr_t>(device_event_)};
  return {reinterpret_cast<uintptr_t>(desc_), reinterpret_cast<uintptr_t>(avail_),
          reinterpret_cast<uintptr_t>(used_)};
}

void VirtqBase::SetInterrupt(bool enable) {
  if (packed_) return PackedSetInterrupt(enable);
  if (event_idx_) {
    // 2.7.10 with EVENT_IDX: "interrupt me once used->idx passes
    // used_event". Armed: the next completion; disarmed: one behind us,
    // crossed only 2^16 completions later.
    __atomic_store_n(npa_vring_used_event(avail_, size_),
                     static_cast<uint16_t>(enable ? last_used_ : last_used_ - 1), __ATOMIC_RELAXED);
  } else {
    __atomic_store_n(&avail_->flags, enable ? 0 : NPA_VRING_AVAIL_F_NO_INTERRUPT, __ATOMIC_RELAXED);
  }
  // Store(flags) -> load(used->idx) ordering needs a full fence: without it the
  // device could publish a used entry, read the old flags (no interrupt) while
  // our re-poll still reads the old idx, and the frame would sit unnoticed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void VirtqBase::ReleaseAll() {
  for (uint16_t id = 0; id < size_; id++) {
    if (!packed_ && IsHead(cookie_[id]) && chain_len_[id] > 1) Unchain(id);
    if (IsHead(cookie_[id])) pool_->FreeFrame(cookie_[id]);
    cookie_[id] = nullptr;
  }
  num_free_ = size_;
  if (packed_) {
    for (uint16_t k = 0; k < size_; k++) free_ids_[k] = static_cast<uint16_t>(size_ - 1 - k);
    free_top_ = size_;
  }
}

uint16_t VirtqBase::FindFree() {
  // Rare path (a completion came back out of order): callers guarantee
  // num_free_ > 0, so this finds one within size_ steps.
  uint16_t i = free_hint_;
  for (uint32_t k = 0; k < size_; k++, i = static_cast<uint16_t>((i + 1) & mask_))
    if (cookie_[i] == nullptr) {
      free_hint_ = static_cast<uint16_t>((i + 1) & mask_);
      return i;
    }
  return 0;  // unreachable while num_free_ is right
}

void VirtqBase::Kick(QueueCounters* c) {
  uint64_t one = 1;
  // A failed write (EAGAIN: counter saturated) still leaves the fd readable,
  // which is all the device needs.
  ssize_t r = ::write(kick_fd_, &one, sizeof one);
  (void)r;
  QueueCounters::Add(c->kicks, 1);
}

void VirtqBase::Publish(uint16_t idx, QueueCounters* c) {
  // 2.7.13.2: descriptor-table and avail-ring stores must be visible before
  // the device can see the new idx: release store.
  __atomic_store_n(&avail_->idx, idx, __ATOMIC_RELEASE);
  const uint16_t old = avail_idx_;
  avail_idx_ = idx;
  // 2.7.13.4 / 2.7.10: the driver must read used->flags (or avail_event)
  // only after the idx store is visible (store->load ordering: a full fence,
  // mfence on x86); otherwise a device going to sleep could miss this idx
  // and our kick.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_idx_) {
    // 2.7.10.1: kick only if this publish moved avail->idx past avail_event.
    const uint16_t ev = __atomic_load_n(npa_vring_avail_event(used_, size_), __ATOMIC_RELAXED);
    if (npa_vring_need_event(ev, idx, old)) Kick(c);
    return;
  }
  if (!(__atomic_load_n(&used_->flags, __ATOMIC_RELAXED) & NPA_VRING_USED_F_NO_NOTIFY)) Kick(c);
}

// A split TX chain headed by id is done: its descriptors go back to what a
// free descriptor holds (flags 0: only chains set NEXT; chain_len_ 1), so
// that posting one buffer needs to store neither. The cookies are the
// caller's.
void VirtqBase::Unchain(uint16_t id) {
  uint16_t d = id;
  for (uint16_t j = 1; j < chain_len_[id]; j++) {
    desc_[d].flags = 0;  // the chain's last one already has 0
    d = chain_next_[d];
  }
  chain_len_[id] = 1;
}

namespace {
// The fast path's virtio-net header: all zero (no offload), two stores.
inline void ZeroTxHdr(void* h) {
  const uint64_t z8 = 0;
  const uint32_t z4 = 0;
  memcpy(h, &z8, 8);
  memcpy(static_cast<uint8_t*>(h) + 8, &z4, 4);
}
}  // namespace

// ------------------------------------------------------------------ TX

uint32_t TxVirtq::Reclaim(QueueCounters* c) {
  if (NPA_UNLIKELY(packed_)) return PackedReclaim(c);
  // Acquire pairs with the device's release of used->idx (2.7.14): the used
  // elements below are read only after the index that covers them.
  const uint16_t used_idx = __atomic_load_n(&used_->idx, __ATOMIC_ACQUIRE);
  const uint16_t cnt = static_cast<uint16_t>(used_idx - last_used_);
  if (NPA_UNLIKELY(cnt > in_flight())) {
    // The device claims more completions than we have frames out.
    broken_ = true;
    QueueCounters::Add(c->tx_bad, 1);
    return 0;
  }
  // The loop's state in locals: the pool's stores could alias the members
  // as far as the compiler knows (it would reload them every entry).
  const npa_vring_used_elem* const uring = used_->ring;
  npa_buf** const cookie = cookie_;
  const uint16_t* const chain_len = chain_len_;
  const uint32_t size = size_;
  const uint16_t mask = mask_;
  BufPool* const pool = pool_;
  uint16_t nf = num_free_;
  uint16_t u = last_used_;
  for (uint16_t k = 0; k < cnt; k++, u++) {
    const uint32_t id = uring[u & mask].id;
    npa_buf* b = id < size ? cookie[id] : nullptr;
    if (NPA_UNLIKELY(!IsHead(b))) {
      QueueCounters::Add(c->tx_bad, 1);
      continue;
    }
    cookie[id] = nullptr;
    const uint16_t len = chain_len[id];
    if (NPA_LIKELY(len == 1)) {
      nf++;
      pool->FreeSeg(b);
      continue;
    }
    uint16_t d = static_cast<uint16_t>(id);
    for (uint16_t j = 1; j < len; j++) {
      d = chain_next_[d];
      cookie[d] = nullptr;
    }
    Unchain(static_cast<uint16_t>(id));
    nf = static_cast<uint16_t>(nf + len);
    pool->FreeFrame(b);
  }
  num_free_ = nf;
  last_used_ = used_idx;
  return cnt;
}

// One single-buffer frame whose header is written: its descriptor (id ==
// slot unless that is still in use), the avail entry, the accounting.
// num_free_ > 0 is the caller's check.
inline void TxVirtq::PlaceOne(npa_buf* b, uint16_t* idx) {
  SplitProducer p = LoadSplit();
  p.Put<0>(this, idx, b, b->iova + b->data_off - kNetHdrLen, b->data_len + kNetHdrLen);
  num_free_ = p.num_free;
}

bool TxVirtq::HardwareTso(const npa_buf* b) const {
  const uint64_t need = (1ull << NPA_VIRTIO_NET_F_CSUM) |
                        (1ull << ((b->ol_flags & NPA_BUF_OL_TX_TSO4) ? NPA_VIRTIO_NET_F_HOST_TSO4
                                                                     : NPA_VIRTIO_NET_F_HOST_TSO6));
  return (features_ & need) == need;
}

bool TxVirtq::EnqueueSoftwareTso(npa_buf* b, uint16_t* idx, QueueCounters* c, uint16_t* extra) {
  TsoPlan p;
  if (!PlanTso(b, &p)) {
    QueueCounters::Add(c->tx_bad, 1);
    pool_->FreeFrame(b);
    return true;
  }
  if (num_free_ < p.nseg) return false;
  npa_buf* segs[kMaxTsoSegments];
  const uint32_t got = pool_->Alloc(segs, p.nseg);
  if (got < p.nseg) {
    pool_->Free(segs, got);
    return false;
  }
  SegmentTso(b, p, segs);
  QueueCounters::Add(c->tx_bytes, b->pkt_len);
  pool_->FreeFrame(b);
  for (uint16_t k = 0; k < p.nseg; k++) {
    // Full checksums are in the segments: a zeroed header (no NEEDS_CSUM).
    memset(static_cast<uint8_t*>(npa_buf_data(segs[k])) - kNetHdrLen, 0, kNetHdrLen);
    if (packed_)
      PackedPlaceOne(segs[k], idx);  // *idx counts frames there
    else
      PlaceOne(segs[k], idx);
  }
  *extra = static_cast<uint16_t>(*extra + p.nseg - 1);
  return true;
}

bool TxVirtq::EnqueueChain(npa_buf* b, uint16_t* idx, QueueCounters* c) {
  uint32_t nseg = 0;
  for (npa_buf* s = b; s != nullptr && nseg <= num_free_; s = s->next) nseg++;
  if (nseg > num_free_) return false;  // ring full: caller stops the burst
  auto* h = reinterpret_cast<npa_virtio_net_hdr_mrg_rxbuf*>(static_cast<uint8_t*>(npa_buf_data(b)) -
                                                        kNetHdrLen);
  if (b->data_off < NPA_BUF_META_SIZE + kNetHdrLen || !EncodeTxHdr(b, features_, h)) {
    QueueCounters::Add(c->tx_bad, 1);
    pool_->FreeFrame(b);
    return true;
  }
  const uint16_t slot = static_cast<uint16_t>(*idx & mask_);
  uint16_t head = slot;
  if (cookie_[head] != nullptr) head = FindFree();
  cookie_[head] = b;
  uint16_t prev = head;
  desc_[head].addr = npa_buf_data_iova(b) - kNetHdrLen;
  desc_[head].len = b->data_len + kNetHdrLen;
  uint64_t bytes = b->data_len;
  for (npa_buf* s = b->next; s != nullptr; s = s->next) {
    uint16_t d = FindFree();
    cookie_[d] = kChainMarker;
    desc_[prev].flags = NPA_VRING_DESC_F_NEXT;
    desc_[prev].next = d;
    chain_next_[prev] = d;
    desc_[d].addr = npa_buf_data_iova(s);
    desc_[d].len = s->data_len;
    bytes += s->data_len;
    prev = d;
  }
  desc_[prev].flags = 0;
  chain_len_[head] = static_cast<uint16_t>(nseg);
  if (shadow_[slot] != head) {
    avail_->ring[slot] = head;
    shadow_[slot] = head;
  }
  num_free_ = static_cast<uint16_t>(num_free_ - nseg);
  (*idx)++;
  QueueCounters::Add(c->tx_bytes, bytes);
  return true;
}

bool TxVirtq::BurstOne(npa_buf* b, uint16_t* idx, uint16_t* extra, uint64_t* bytes,
                       QueueCounters* c) {
  // virtio-net has no VLAN insertion: the tag goes in here, before TSO
  // (every segment carries it) and before the header is encoded (it moves
  // csum_start). A frame the ring then cannot take comes back tagged.
  if (b->ol_flags != 0) {
    if ((b->ol_flags & NPA_BUF_OL_TX_VLAN) != 0 && !InsertVlan(b)) {
      QueueCounters::Add(c->tx_bad, 1);
      pool_->FreeFrame(b);
      return true;
    }
    if ((b->ol_flags & (NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6)) != 0 && !HardwareTso(b))
      return EnqueueSoftwareTso(b, idx, c, extra);
  }
  if (b->next != nullptr) return EnqueueChain(b, idx, c);
  if (num_free_ == 0) return false;
  auto* h = reinterpret_cast<npa_virtio_net_hdr_mrg_rxbuf*>(
      static_cast<uint8_t*>(npa_buf_data(b)) - kNetHdrLen);
  if (b->ol_flags == 0 && b->data_off >= NPA_BUF_META_SIZE + kNetHdrLen) {
    ZeroTxHdr(h);  // the VLAN tag went in and nothing else was asked
  } else if (b->data_off < NPA_BUF_META_SIZE + kNetHdrLen || !EncodeTxHdr(b, features_, h)) {
    QueueCounters::Add(c->tx_bad, 1);
    pool_->FreeSeg(b);
    return true;
  }
  PlaceOne(b, idx);
  *bytes += b->data_len;
  return true;
}

uint16_t TxVirtq::Burst(npa_buf** bufs, uint16_t n, QueueCounters* c) {
  // Ring kind: one test per burst, never per frame.
  if (NPA_UNLIKELY(packed_)) return PackedBurst(bufs, n, c);
  // One used->idx read per burst at most (in Reclaim): that line is the
  // device's hottest, written every burst.
  if (num_free_ < n + kTxFreeThresh) Reclaim(c);
  if (NPA_UNLIKELY(num_free_ == 0)) {
    // Still full: nothing to build, nothing to publish (the loop below would
    // stop at its first frame for the same reason).
    if (n) QueueCounters::Add(c->tx_full, 1);
    return 0;
  }
  uint16_t idx = avail_idx_;
  uint64_t bytes = 0;
  uint16_t extra = 0;  // avail entries beyond one per frame (software TSO)
  uint16_t i = 0;
  SplitProducer p = LoadSplit();
  for (; i < n; i++) {
    npa_buf* b = bufs[i];
    // The common frame, one test each: no offload requested, one segment,
    // room for the header in front of the data. The rest go to BurstOne,
    // which runs the same steps on the members.
    if (NPA_LIKELY(b->ol_flags == 0 && b->next == nullptr &&
                   b->data_off >= NPA_BUF_META_SIZE + kNetHdrLen)) {
      if (NPA_UNLIKELY(p.num_free == 0)) break;
      ZeroTxHdr(static_cast<uint8_t*>(npa_buf_data(b)) - kNetHdrLen);
      p.Put<0>(this, &idx, b, b->iova + b->data_off - kNetHdrLen, b->data_len + kNetHdrLen);
      bytes += b->data_len;
      continue;
    }
    num_free_ = p.num_free;
    const bool more = BurstOne(b, &idx, &extra, &bytes, c);
    p.num_free = num_free_;
    if (!more) break;
  }
  num_free_ = p.num_free;
  const uint16_t queued = static_cast<uint16_t>(idx - avail_idx_);
  if (queued) {
    Publish(idx, c);
    QueueCounters::Add(c->tx_packets, queued - extra);
    QueueCounters::Add(c->tx_emulated, queued - extra);
    QueueCounters::Add(c->tx_bytes, bytes);
  }
  if (i < n) QueueCounters::Add(c->tx_full, 1);
  return i;
}

}  // namespace npa::shell
