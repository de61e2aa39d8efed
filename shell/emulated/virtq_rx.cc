// shell/emulated/virtq_rx.cc — the split ring's RX half (virtq.h): refill,
// the receive burst and the mergeable-frame assembly. The TX half and the
// shared setup are in virtq.cc.
#include <cstring>

#include "shell/emulated/virtq.h"
#include "shell/emulated/virtq_internal.h"
#include "shell/offload.h"

namespace npa::shell {
using namespace virtq_internal;  // NOLINT: the layout and thresholds both ring kinds share

uint32_t RxVirtq::Refill(QueueCounters* c) {
  if (NPA_UNLIKELY(packed_)) return PackedRefill(c);
  uint16_t idx = avail_idx_;
  uint32_t total = 0;
  npa_buf* tmp[64];
  while (num_free_ > 0) {
    uint32_t want = num_free_ < 64 ? num_free_ : 64;
    uint32_t k = pool_->AllocRaw(tmp, want);
    if (k == 0) break;
    SplitProducer p = LoadSplit();
    for (uint32_t j = 0; j < k; j++) {
      npa_buf* b = tmp[j];
      // The descriptor starts kNetHdrLen before the default data offset so
      // the frame itself lands at NPA_BUF_DATA_OFF (buf.h slot layout).
      p.Put<NPA_VRING_DESC_F_WRITE>(this, &idx, b, b->iova + NPA_BUF_DATA_OFF - kNetHdrLen,
                                    kRxBufLen);
    }
    num_free_ = p.num_free;
    total += k;
  }
  if (total) Publish(idx, c);
  return total;
}

npa_buf* RxVirtq::TakeUsed(uint32_t id) {
  npa_buf* b = id < size_ ? cookie_[id] : nullptr;
  if (NPA_UNLIKELY(!IsHead(b))) return nullptr;
  cookie_[id] = nullptr;
  num_free_++;
  return b;
}

bool RxVirtq::TakeMerged(uint16_t nb, uint16_t avail, npa_buf** out, uint64_t* bytes,
                         QueueCounters* c) {
  if (nb > avail) return false;  // the rest of the frame is not published yet
  RxChain f;
  for (uint16_t k = 0; k < nb; k++, last_used_++) {
    const npa_vring_used_elem e = used_->ring[last_used_ & mask_];
    f.Add(TakeUsed(e.id), e.len);
  }
  f.Finish(pool_, c, out, bytes);
  return true;
}

uint16_t RxVirtq::Burst(npa_buf** bufs, uint16_t n, QueueCounters* c) {
  if (NPA_UNLIKELY(packed_)) return PackedBurst(bufs, n, c);
  // Acquire: used elements and the frame bytes they describe are read only
  // after the index that publishes them (2.7.14, device's release store).
  const uint16_t used_idx = __atomic_load_n(&used_->idx, __ATOMIC_ACQUIRE);
  uint16_t avail = static_cast<uint16_t>(used_idx - last_used_);
  if (NPA_UNLIKELY(avail > in_flight())) {
    broken_ = true;
    QueueCounters::Add(c->rx_bad, 1);
    return 0;
  }
  uint16_t got = 0;
  uint64_t bytes = 0;
  // The loop's state in locals: the stores into the buffers and bufs[]
  // could alias the members as far as the compiler knows (it would reload
  // them every entry). The mergeable path works on the members: synced
  // around it.
  const npa_vring_used_elem* const uring = used_->ring;
  npa_buf** const cookie = cookie_;
  const uint32_t size = size_;
  const uint16_t mask = mask_;
  BufPool* const pool = pool_;
  const bool mrg = mrg_;
  uint16_t lu = last_used_, nf = num_free_;
  while (got < n && avail > 0) {
    const npa_vring_used_elem e = uring[lu & mask];
    npa_buf* b = e.id < size ? cookie[e.id] : nullptr;
    if (NPA_UNLIKELY(!IsHead(b))) {
      QueueCounters::Add(c->rx_bad, 1);
      lu++;
      avail--;
      continue;
    }
    if (avail > 1) {
      // Next frame's buffer: its header line (device-written) and its npa_buf
      // line (we write it next iteration). Only a hint, never dereferenced:
      // the id masked into the table (size == mask + 1 on a split ring)
      // instead of checked, and a prefetch of a free slot's null or a chain
      // marker does not fault (the offset is added as an integer: no
      // pointer arithmetic on them).
      const uintptr_t nb = reinterpret_cast<uintptr_t>(cookie[uring[(lu + 1) & mask].id & mask]);
      __builtin_prefetch(reinterpret_cast<const void*>(nb), 1);
      __builtin_prefetch(reinterpret_cast<const void*>(nb + NPA_BUF_META_SIZE), 0);
    }
    const auto* h = reinterpret_cast<const npa_virtio_net_hdr_mrg_rxbuf*>(
        reinterpret_cast<const uint8_t*>(b) + NPA_BUF_DATA_OFF - kNetHdrLen);
    if (NPA_UNLIKELY(mrg && h->num_buffers != 1)) {
      last_used_ = lu;
      num_free_ = nf;
      const uint16_t nb = h->num_buffers;
      npa_buf* f = nullptr;
      bool stop = false;
      if (nb == 0 || nb > in_flight()) {  // impossible count: drop the one buffer
        TakeUsed(e.id);
        pool_->FreeSeg(b);
        QueueCounters::Add(c->rx_bad, 1);
        last_used_++;
        avail--;
      } else if (!TakeMerged(nb, avail, &f, &bytes, c)) {
        stop = true;
      } else {
        avail = static_cast<uint16_t>(avail - nb);
        if (f) bufs[got++] = f;
      }
      lu = last_used_;
      nf = num_free_;
      if (stop) break;
      continue;
    }
    cookie[e.id] = nullptr;
    nf++;
    lu++;
    avail--;
    if (NPA_UNLIKELY(e.len < kNetHdrLen || e.len > kRxBufLen)) {
      pool->FreeSeg(b);
      QueueCounters::Add(c->rx_bad, 1);
      QueueCounters::Add(c->rx_dropped, 1);
      continue;
    }
    const uint32_t len = e.len - kNetHdrLen;
    // Offsets outside the frame or an impossible GSO: never passed on.
    if (!FinishRxFrame(b, h, len, pool, c)) continue;
    bufs[got++] = b;
    bytes += len;
  }
  last_used_ = lu;
  num_free_ = nf;
  EndRxBurst(bufs, got, bytes, strip_vlan_, c);
  if (num_free_ >= kRxRefillBatch) Refill(c);
  return got;
}

}  // namespace npa::shell
