// shell/emulated/packed_virtq_rx.cc — the RX half of the packed ring
// (VIRTIO 1.1 2.8): posting buffers and taking received frames, with the
// checks and the design described in packed_virtq.cc.
#include <cstring>

#include "shell/emulated/virtq.h"
#include "shell/emulated/virtq_internal.h"
#include "shell/offload.h"

namespace npa::shell {
using namespace virtq_internal;  // NOLINT: the layout and thresholds both ring kinds share

// ------------------------------------------------------------------ RX

uint32_t RxVirtq::PackedRefill(QueueCounters* c) {
  uint32_t total = 0;
  npa_buf* tmp[64];
  PackedProducer p = LoadProducer();
  npa_buf** const cookie = cookie_;
  uint16_t* const clen = chain_len_;
  const uint16_t* const ids = free_ids_;
  uint16_t nfree = num_free_, top = free_top_;
  while (nfree > 0) {
    const uint32_t want = nfree < 64 ? nfree : 64;
    const uint32_t k = pool_->AllocRaw(tmp, want);
    if (k == 0) break;
    for (uint32_t j = 0; j < k; j++) {
      npa_buf* b = tmp[j];
      const uint16_t id = ids[--top];
      cookie[id] = b;
      clen[id] = 1;
      // Header in the headroom, the frame at NPA_BUF_DATA_OFF (as split).
      p.Put(b->iova + NPA_BUF_DATA_OFF - kNetHdrLen, kRxBufLen, id, NPA_VRING_DESC_F_WRITE);
    }
    nfree = static_cast<uint16_t>(nfree - k);
    total += k;
  }
  num_free_ = nfree;
  free_top_ = top;
  StoreProducer(p);
  PackedPublish(c);
  return total;
}

bool RxVirtq::PackedTakeMerged(uint16_t nb, npa_buf** out, uint64_t* bytes, QueueCounters* c) {
  // All nb used descriptors must be there before any is taken: look ahead
  // (consecutive slots, one descriptor per RX chain).
  {
    uint16_t pos = last_used_;
    bool wrap = used_wrap_;
    for (uint16_t k = 0; k < nb; k++) {
      const uint16_t f = __atomic_load_n(&pdesc_[pos].flags, __ATOMIC_ACQUIRE);
      if (((f & NPA_VRING_PACKED_F_USED) != 0) != wrap) return false;
      if (++pos == size_) {
        pos = 0;
        wrap = !wrap;
      }
    }
  }
  RxChain f;
  for (uint16_t k = 0; k < nb; k++) {
    uint16_t id;
    uint32_t len;
    npa_buf* b = nullptr;
    if (PackedPoll(&id, &len) > 0 && id < size_) b = cookie_[id];
    if (!IsHead(b)) {
      broken_ = true;  // as in Burst: the used position is lost
      f.Add(nullptr, 0);
      break;
    }
    PackedFreeId(id);
    PackedAdvanceUsed(1);
    f.Add(b, len);
  }
  f.Finish(pool_, c, out, bytes);
  return true;
}

uint16_t RxVirtq::PackedBurst(npa_buf** bufs, uint16_t n, QueueCounters* c) {
  if (NPA_UNLIKELY(broken_)) return 0;
  uint16_t got = 0;
  uint64_t bytes = 0;
  // Each round consumes a used descriptor or leaves the loop.
  while (got < n && num_free_ < size_) {
    uint16_t id;
    uint32_t len;
    const int r = PackedPoll(&id, &len);
    if (r == 0) break;
    npa_buf* b = (r > 0 && id < size_) ? cookie_[id] : nullptr;
    if (NPA_UNLIKELY(!IsHead(b))) {
      broken_ = true;
      QueueCounters::Add(c->rx_bad, 1);
      break;
    }
    const auto* h = reinterpret_cast<const npa_virtio_net_hdr_mrg_rxbuf*>(
        reinterpret_cast<const uint8_t*>(b) + NPA_BUF_DATA_OFF - kNetHdrLen);
    if (NPA_UNLIKELY(mrg_ && len >= kNetHdrLen && len <= kRxBufLen && h->num_buffers != 1)) {
      const uint16_t nb = h->num_buffers;
      npa_buf* f = nullptr;
      if (nb == 0 || nb > in_flight()) {  // impossible count: drop the one buffer
        PackedFreeId(id);
        PackedAdvanceUsed(1);
        pool_->FreeSeg(b);
        QueueCounters::Add(c->rx_bad, 1);
        QueueCounters::Add(c->rx_dropped, 1);
        continue;
      }
      if (!PackedTakeMerged(nb, &f, &bytes, c)) break;
      if (f) bufs[got++] = f;
      if (broken_) break;
      continue;
    }
    PackedFreeId(id);
    PackedAdvanceUsed(1);
    if (NPA_UNLIKELY(len < kNetHdrLen || len > kRxBufLen)) {  // more than we posted
      pool_->FreeSeg(b);
      QueueCounters::Add(c->rx_bad, 1);
      QueueCounters::Add(c->rx_dropped, 1);
      continue;
    }
    const uint32_t flen = len - kNetHdrLen;
    if (!FinishRxFrame(b, h, flen, pool_, c)) continue;
    bufs[got++] = b;
    bytes += flen;
  }
  EndRxBurst(bufs, got, bytes, strip_vlan_, c);
  if (num_free_ >= kRxRefillBatch && !broken_) PackedRefill(c);
  return got;
}


}  // namespace npa::shell
