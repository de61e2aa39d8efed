// shell/emulated/packed_virtq.cc — the driver side of a VIRTIO 1.1 packed
// virtqueue (2.8) for TxVirtq / RxVirtq (virtq.h; the RX half is in
// packed_virtq_rx.cc, the shared helpers in virtq_internal.h), chosen at Init when
// VIRTIO_F_RING_PACKED was negotiated.
//
// Design:
//  - One ring of descriptors both sides write (2.8.1). avail_idx_ is the next
//    slot we fill, avail_wrap_ its driver wrap counter; last_used_ /
//    used_wrap_ the next slot we expect the device to mark used. Both
//    counters start at 1 and flip when their slot wraps past size - 1, so
//    the ring size need not be a power of two (2.8.2).
//  - Buffer ids are separate from slots (2.8.13): a private stack of free ids;
//    cookie_[id] is the frame (the only source of buffer pointers),
//    chain_len_[id] the slots its chain took, so a used descriptor advances
//    the used position by that many (2.8.7: the device writes one used
//    descriptor per chain, in the order it completes them, which need not
//    be the order they were made available).
//  - A burst is published by one store (2.8.21.3.1, as Linux and DPDK do):
//    every descriptor but the burst's first gets its flags as it is written;
//    the first one's flags are stored last, with release, so the device,
//    which reads slots in order, sees the whole burst at once and never a
//    half-written descriptor.
//  - Nothing from the ring is trusted. A used descriptor is accepted only if
//    its AVAIL and USED bits both equal our used wrap counter (2.8.1), its
//    id is in range and outstanding (cookie_), and (RX) its len fits the
//    buffer posted. An id that is not outstanding, a slot marked used while
//    nothing is outstanding, or a flags state no device may write (USED set
//    to our wrap counter but AVAIL not) leave us unable to tell where the
//    device's next used descriptor is: counted (tx_bad / rx_bad) and the
//    queue goes inert (broken()), as a split ring does for an impossible
//    used index. A bad len is counted and the frame dropped; the ring goes
//    on. Frees go through BufPool's checks.
//  - Notifications (2.8.10): we kick unless the device's event area says
//    DISABLE, or (EVENT_IDX, flags DESC) the slot it names was not in this
//    burst. Interrupts: our event area says DISABLE while polling; armed, it
//    says ENABLE, or with EVENT_IDX DESC at our used position.
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "shell/emulated/virtq.h"
#include "shell/emulated/virtq_internal.h"
#include "shell/offload.h"

namespace npa::shell {
using namespace virtq_internal;  // NOLINT: the layout and thresholds both ring kinds share


absl::Status VirtqBase::PackedInit(uint8_t* mem) {
  if (size_ == 0 || size_ > NPA_VRING_MAX_SIZE)
    return absl::InvalidArgumentError(absl::StrCat("packed ring size ", size_, " outside 1..32768"));
  if (reinterpret_cast<uintptr_t>(mem) % 4096 != 0)
    return absl::InvalidArgumentError("ring memory must be page aligned");
  const Layout l = LayoutFor(size_);
  // 2.8.1 (driver init): all-zero descriptors are neither available nor
  // used for wrap counter 1.
  memset(mem, 0, l.total);
  pdesc_ = reinterpret_cast<npa_vring_packed_desc*>(mem);
  driver_event_ = reinterpret_cast<npa_vring_packed_desc_event*>(mem + l.avail);
  device_event_ = reinterpret_cast<const npa_vring_packed_desc_event*>(mem + l.used);
  desc_ = nullptr;
  avail_ = nullptr;
  used_ = nullptr;
  mask_ = 0;
  // Private, never in shared memory: per id the frame, its chain length, and
  // the free-id stack.
  const size_t bytes = sizeof(npa_buf*) * size_ + 3 * sizeof(uint16_t) * size_;
  priv_ = std::make_unique<uint8_t[]>(bytes);
  memset(priv_.get(), 0, bytes);
  cookie_ = reinterpret_cast<npa_buf**>(priv_.get());
  chain_len_ = reinterpret_cast<uint16_t*>(cookie_ + size_);
  free_ids_ = chain_len_ + size_;
  shadow_ = nullptr;
  chain_next_ = nullptr;
  // Ids handed out 0, 1, 2 ...: in order, a frame's id equals its slot.
  for (uint16_t k = 0; k < size_; k++) free_ids_[k] = static_cast<uint16_t>(size_ - 1 - k);
  free_top_ = size_;
  avail_idx_ = 0;
  last_used_ = 0;
  avail_wrap_ = used_wrap_ = true;
  num_free_ = size_;
  broken_ = false;
  pk_head_ = kNoHead;
  pk_added_ = 0;
  driver_event_->flags = NPA_VRING_PACKED_EVENT_FLAG_DISABLE;  // polling until told otherwise
  return absl::OkStatus();
}

void VirtqBase::PackedSetInterrupt(bool enable) {
  if (!enable) {
    __atomic_store_n(&driver_event_->flags, NPA_VRING_PACKED_EVENT_FLAG_DISABLE, __ATOMIC_RELAXED);
  } else if (event_idx_) {
    // 2.8.10: off_wrap first, then (release) the flags that make the device
    // read it: "interrupt me when you mark the slot at our used position".
    __atomic_store_n(&driver_event_->off_wrap,
                     static_cast<uint16_t>(npa_vring_packed_base(last_used_, used_wrap_)),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&driver_event_->flags, NPA_VRING_PACKED_EVENT_FLAG_DESC, __ATOMIC_RELEASE);
  } else {
    __atomic_store_n(&driver_event_->flags, NPA_VRING_PACKED_EVENT_FLAG_ENABLE, __ATOMIC_RELAXED);
  }
  // Store(flags) -> load(descriptor flags) needs a full fence, as on a split
  // ring: else a used descriptor written meanwhile could go unsignalled and
  // unseen by the caller's re-poll (2.8.22).
  std::atomic_thread_fence(std::memory_order_seq_cst);
}


void VirtqBase::PackedWrite(uint64_t addr, uint32_t len, uint16_t id, uint16_t flags) {
  PackedProducer p = LoadProducer();
  p.Put(addr, len, id, flags);
  StoreProducer(p);
}

void VirtqBase::PackedPublish(QueueCounters* c) {
  if (pk_head_ == kNoHead) return;
  // 2.8.21.3.1: the head's flags last, with release: every descriptor of the
  // burst is visible before the device can see the first one available.
  __atomic_store_n(&pdesc_[pk_head_].flags, pk_head_flags_, __ATOMIC_RELEASE);
  const uint16_t added = pk_added_;
  pk_head_ = kNoHead;
  pk_added_ = 0;
  // 2.8.23 (driver notifications): the device's event area is read only
  // after the flags store is visible: store->load, a full fence.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t flags = __atomic_load_n(&device_event_->flags, __ATOMIC_RELAXED);
  if (flags == NPA_VRING_PACKED_EVENT_FLAG_DISABLE) return;
  if (flags != NPA_VRING_PACKED_EVENT_FLAG_DESC || !event_idx_) return Kick(c);
  // 2.8.10: DESC: kick if the slot named by off_wrap was made available now.
  // Positions on one line: this lap's slots 0..size-1, the last lap's
  // below 0 (mod 2^16; size <= 2^15 keeps them apart).
  const uint16_t ow = __atomic_load_n(&device_event_->off_wrap, __ATOMIC_RELAXED);
  uint16_t ev = static_cast<uint16_t>(ow & 0x7fff);
  if (((ow >> NPA_VRING_PACKED_EVENT_F_WRAP_CTR) & 1) != (avail_wrap_ ? 1 : 0))
    ev = static_cast<uint16_t>(ev - size_);
  const uint16_t now = avail_idx_;
  if (npa_vring_need_event(ev, now, static_cast<uint16_t>(now - added))) Kick(c);
}

uint16_t VirtqBase::PackedDeviceUsedBase() const {
  // Our used position, then every used descriptor the device wrote beyond
  // it, each advancing by its chain's length (checked as the rings do; a
  // bad one ends the walk). At most size steps.
  uint16_t pos = __atomic_load_n(&last_used_, __ATOMIC_RELAXED);
  bool wrap = used_wrap_;
  uint32_t left = in_flight();
  for (uint32_t k = 0; k < size_ && left > 0; k++) {
    const npa_vring_packed_desc* d = &pdesc_[pos];
    if (Classify(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE), wrap) != 1) break;
    const uint16_t id = d->id;
    if (id >= size_ || !IsHead(cookie_[id]) || chain_len_[id] > left) break;
    left -= chain_len_[id];
    uint32_t p = pos + chain_len_[id];
    if (p >= size_) {
      p -= size_;
      wrap = !wrap;
    }
    pos = static_cast<uint16_t>(p);
  }
  return static_cast<uint16_t>(npa_vring_packed_base(pos, wrap));
}

uint16_t VirtqBase::PackedDeviceInFlight() const {
  const uint16_t b = PackedDeviceUsedBase();
  const uint16_t pos = b & 0x7fff;
  const bool wrap = (b >> 15) != 0;
  const uint32_t a = avail_idx_ + (wrap != avail_wrap_ ? size_ : 0u);
  return static_cast<uint16_t>(a - pos);
}

// ------------------------------------------------------------------ TX

uint32_t TxVirtq::PackedReclaim(QueueCounters* c) {
  if (NPA_UNLIKELY(broken_)) return 0;
  // Locals: the pool's stores below would make the compiler reload members.
  const npa_vring_packed_desc* const ring = pdesc_;
  npa_buf** const cookie = cookie_;
  const uint16_t* const clen = chain_len_;
  uint16_t* const ids = free_ids_;
  BufPool* const pool = pool_;
  const uint16_t size = size_;
  uint16_t pos = last_used_, nfree = num_free_, top = free_top_;
  bool wrap = used_wrap_;
  uint32_t done = 0;
  // Each round frees at least one descriptor: at most size rounds.
  while (nfree < size) {
    // Acquire pairs with the device's release of the flags (2.8.21.4).
    const int r = Classify(__atomic_load_n(&ring[pos].flags, __ATOMIC_ACQUIRE), wrap);
    if (r == 0) break;
    const uint16_t id = ring[pos].id;
    npa_buf* b = (r > 0 && id < size) ? cookie[id] : nullptr;
    if (NPA_UNLIKELY(!IsHead(b))) {
      // Out of range, not outstanding (a duplicate), or an impossible slot:
      // where the next used descriptor lies is unknown. Inert.
      broken_ = true;
      QueueCounters::Add(c->tx_bad, 1);
      break;
    }
    const uint16_t n = clen[id];
    cookie[id] = nullptr;
    ids[top++] = id;
    nfree = static_cast<uint16_t>(nfree + n);
    uint32_t p = pos + n;
    if (p >= size) {
      p -= size;
      wrap = !wrap;
    }
    pos = static_cast<uint16_t>(p);
    if (NPA_LIKELY(n == 1))
      pool->FreeSeg(b);
    else
      pool->FreeFrame(b);
    done++;
  }
  last_used_ = pos;
  used_wrap_ = wrap;
  num_free_ = nfree;
  free_top_ = top;
  return done;
}

void TxVirtq::PackedPlaceOne(npa_buf* b, uint16_t* frames) {
  const uint16_t id = free_ids_[--free_top_];
  cookie_[id] = b;
  chain_len_[id] = 1;
  PackedWrite(b->iova + b->data_off - kNetHdrLen, b->data_len + kNetHdrLen, id, 0);
  num_free_--;
  (*frames)++;
}

bool TxVirtq::PackedEnqueueChain(npa_buf* b, uint16_t* frames, QueueCounters* c) {
  uint32_t nseg = 0;
  for (npa_buf* s = b; s != nullptr && nseg <= num_free_; s = s->next) nseg++;
  if (nseg > num_free_) return false;
  auto* h = reinterpret_cast<npa_virtio_net_hdr_mrg_rxbuf*>(static_cast<uint8_t*>(npa_buf_data(b)) -
                                                        kNetHdrLen);
  if (b->data_off < NPA_BUF_META_SIZE + kNetHdrLen || !EncodeTxHdr(b, features_, h)) {
    QueueCounters::Add(c->tx_bad, 1);
    pool_->FreeFrame(b);
    return true;
  }
  const uint16_t id = free_ids_[--free_top_];
  cookie_[id] = b;
  chain_len_[id] = static_cast<uint16_t>(nseg);
  uint64_t bytes = 0;
  // 2.8.6: a chain takes consecutive slots, NEXT on all but the last.
  for (npa_buf* s = b; s != nullptr; s = s->next) {
    const bool head = s == b;
    PackedWrite(head ? npa_buf_data_iova(b) - kNetHdrLen : npa_buf_data_iova(s),
                head ? s->data_len + kNetHdrLen : s->data_len, id,
                s->next != nullptr ? NPA_VRING_DESC_F_NEXT : 0);
    bytes += s->data_len;
  }
  num_free_ = static_cast<uint16_t>(num_free_ - nseg);
  (*frames)++;
  QueueCounters::Add(c->tx_bytes, bytes);
  return true;
}

uint16_t TxVirtq::PackedBurst(npa_buf** bufs, uint16_t n, QueueCounters* c) {
  if (num_free_ < n + kTxFreeThresh) PackedReclaim(c);
  if (NPA_UNLIKELY(num_free_ == 0)) {
    if (n) QueueCounters::Add(c->tx_full, 1);
    return 0;
  }
  uint16_t frames = 0;  // frames placed (software TSO: one per segment)
  uint16_t extra = 0;
  uint64_t bytes = 0;
  // The common frame's state in locals (PackedProducer); the rare paths
  // (offloads, chains) work on the members, synced around them.
  PackedProducer p = LoadProducer();
  npa_buf** const cookie = cookie_;
  uint16_t* const clen = chain_len_;
  const uint16_t* const ids = free_ids_;
  uint16_t nfree = num_free_, top = free_top_;
  auto sync_out = [&] {
    StoreProducer(p);
    num_free_ = nfree;
    free_top_ = top;
  };
  auto sync_in = [&] {
    p = LoadProducer();
    nfree = num_free_;
    top = free_top_;
  };
  uint16_t i = 0;
  for (; i < n; i++) {
    npa_buf* b = bufs[i];
    // The same per-frame work as the split Burst (virtq.cc), in the same order.
    if (NPA_UNLIKELY(b->ol_flags != 0)) {
      if ((b->ol_flags & NPA_BUF_OL_TX_VLAN) != 0 && !InsertVlan(b)) {
        QueueCounters::Add(c->tx_bad, 1);
        pool_->FreeFrame(b);
        continue;
      }
      if ((b->ol_flags & (NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6)) != 0 && !HardwareTso(b)) {
        sync_out();
        const bool took = EnqueueSoftwareTso(b, &frames, c, &extra);
        sync_in();
        if (!took) break;
        continue;
      }
    }
    if (NPA_UNLIKELY(b->next != nullptr)) {
      sync_out();
      const bool took = PackedEnqueueChain(b, &frames, c);
      sync_in();
      if (!took) break;
      continue;
    }
    if (NPA_UNLIKELY(nfree == 0)) break;
    auto* h = reinterpret_cast<npa_virtio_net_hdr_mrg_rxbuf*>(
        static_cast<uint8_t*>(npa_buf_data(b)) - kNetHdrLen);
    if (NPA_LIKELY(b->ol_flags == 0 && b->data_off >= NPA_BUF_META_SIZE + kNetHdrLen)) {
      uint64_t z8 = 0;
      uint32_t z4 = 0;
      memcpy(h, &z8, 8);
      memcpy(reinterpret_cast<uint8_t*>(h) + 8, &z4, 4);
    } else if (b->data_off < NPA_BUF_META_SIZE + kNetHdrLen || !EncodeTxHdr(b, features_, h)) {
      QueueCounters::Add(c->tx_bad, 1);
      pool_->FreeSeg(b);
      continue;
    }
    // PackedPlaceOne, on the locals.
    const uint16_t id = ids[--top];
    cookie[id] = b;
    clen[id] = 1;
    p.Put(b->iova + b->data_off - kNetHdrLen, b->data_len + kNetHdrLen, id, 0);
    nfree--;
    frames++;
    bytes += b->data_len;
  }
  sync_out();
  if (frames) {
    PackedPublish(c);
    QueueCounters::Add(c->tx_packets, frames - extra);
    QueueCounters::Add(c->tx_emulated, frames - extra);
    QueueCounters::Add(c->tx_bytes, bytes);
  }
  if (i < n) QueueCounters::Add(c->tx_full, 1);
  return i;
}

}  // namespace npa::shell
