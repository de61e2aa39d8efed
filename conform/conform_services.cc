// conform/conform_services.cc — see conform_services.h.
#include "conform/conform_services.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "shell/offload.h"

namespace npa::conform {

// ---------------------------------------------------------------- SlotPool

SlotPool::SlotPool(uint8_t* base, uint64_t len, uint64_t iova_base, Violations* violations)
    : base_(base), len_(len), iova_base_(iova_base), violations_(violations) {
  for (uint64_t off = 0; off + NPA_BUF_SLOT_SIZE <= len_; off += NPA_BUF_SLOT_SIZE)
    slots_.push_back(reinterpret_cast<npa_buf*>(base_ + off));
  busy_.assign(slots_.size(), 0);
  sent_.assign(slots_.size(), 0);
  rx_seen_.assign(slots_.size(), 0);
  // Slot 0 on top: the first buffers handed out are the lowest addresses.
  for (uint32_t i = static_cast<uint32_t>(slots_.size()); i-- > 0;) free_.push_back(i);
}

uint16_t SlotPool::Alloc(uint16_t, npa_buf** bufs, uint16_t n) {
  if (bufs == nullptr) return 0;
  uint16_t i = 0;
  for (; i < n && !free_.empty(); i++) {
    uint32_t k = free_.back();
    free_.pop_back();
    busy_[k] = 1;
    npa_buf* x = slots_[k];
    std::memset(x, 0, sizeof(*x));
    x->iova = iova_base_ + (reinterpret_cast<uint8_t*>(x) - base_);
    x->data_off = NPA_BUF_DATA_OFF;
    x->buf_len = NPA_BUF_SLOT_SIZE;
    x->nb_segs = 1;
    x->slot = k;
    bufs[i] = x;
  }
  out_ += i;
  return i;
}

bool SlotPool::FreeOne(npa_buf* b) {
  uint8_t* p = reinterpret_cast<uint8_t*>(b);
  if (p < base_ || p >= base_ + len_ || (p - base_) % NPA_BUF_SLOT_SIZE != 0 ||
      static_cast<uint64_t>(p - base_) / NPA_BUF_SLOT_SIZE >= slots_.size()) {
    violations_->Add("buf_free of a pointer that is not a pool buffer");
    return false;
  }
  uint32_t k = static_cast<uint32_t>((p - base_) / NPA_BUF_SLOT_SIZE);
  if (!busy_[k]) {
    violations_->Add("buf_free of a buffer that is already free");
    return false;
  }
  busy_[k] = 0;
  free_.push_back(k);
  out_--;
  return true;
}

int64_t SlotPool::SlotOf(const npa_buf* b) const {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(b);
  if (p < base_ || p >= base_ + len_ || (p - base_) % NPA_BUF_SLOT_SIZE != 0) return -1;
  const uint64_t k = static_cast<uint64_t>(p - base_) / NPA_BUF_SLOT_SIZE;
  return k < slots_.size() ? static_cast<int64_t>(k) : -1;
}

void SlotPool::MarkSent(npa_buf** bufs, uint16_t n) {
  for (uint16_t i = 0; i < n; i++)
    if (int64_t k = SlotOf(bufs[i]); k >= 0) sent_[k] = 1;
}

void SlotPool::Unsent(npa_buf** bufs, uint16_t n) {
  for (uint16_t i = 0; i < n; i++)
    if (int64_t k = SlotOf(bufs[i]); k >= 0) sent_[k] = 0;
}

void SlotPool::Free(uint16_t, npa_buf** bufs, uint16_t n) {
  if (bufs == nullptr) return;
  for (uint16_t i = 0; i < n; i++) {
    const int64_t k = SlotOf(bufs[i]);
    if (k < 0 || !sent_[k]) continue;
    sent_[k] = 0;
    if (tx_free_)
      violations_->Add(
          "buf_free of a TX frame: a plug-in with NPA_PLUGIN_F_TX_FREE returns TX frames "
          "through buf_free_tx only");
  }
  FreeFrames(bufs, n);
}

void SlotPool::FreeTx(uint16_t, npa_buf** bufs, uint16_t n) {
  if (bufs == nullptr) return;
  for (uint16_t i = 0; i < n; i++) {
    const int64_t k = SlotOf(bufs[i]);
    if (k >= 0 && sent_[k]) {
      sent_[k] = 0;
    } else if (k >= 0 && busy_[k]) {
      violations_->Add("buf_free_tx of a buffer that was never handed to tx_burst (an RX buffer?)");
    }
  }
  FreeFrames(bufs, n);
}

void SlotPool::FreeFrames(npa_buf** bufs, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    // A frame with all its segments. The next pointer is read before the
    // slot goes back (it may be handed out again), and only from a buffer
    // that was ours: a foreign pointer's "next" is not followed.
    npa_buf* s = bufs[i];
    for (int k = 0; s != nullptr && k < 256; k++) {
      npa_buf* next = s->next;
      if (!FreeOne(s)) break;
      s = next;
    }
  }
}

uint16_t SlotPool::CheckRx(npa_buf** bufs, uint16_t n) {
  if (bufs == nullptr) return 0;
  // A new mark per call: a slot seen twice in this burst is handed up twice.
  if (++rx_epoch_ == 0) {
    std::fill(rx_seen_.begin(), rx_seen_.end(), 0);
    rx_epoch_ = 1;
  }
  auto held = [this](const npa_buf* s) {
    const int64_t k = SlotOf(s);
    return k >= 0 && busy_[k] && !sent_[k];
  };
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; i++) {
    npa_buf* b = bufs[i];
    const int64_t k = SlotOf(b);
    if (k < 0 || !busy_[k]) {
      violations_->Add(absl::StrFormat("rx_burst handed up %p: %s", static_cast<void*>(b),
                                       k < 0 ? "not a buffer slot" : "a buffer that is free"));
      continue;
    }
    if (sent_[k]) {
      violations_->Add(absl::StrCat("rx_burst handed up slot ", k, ": a TX frame the plug-in holds"));
      continue;
    }
    if (rx_seen_[k] == rx_epoch_) {
      violations_->Add(absl::StrCat("rx_burst handed up slot ", k, " twice in one burst"));
      continue;
    }
    rx_seen_[k] = rx_epoch_;
    const shell::RxFrameFault f = shell::FindRxFrameFault(b, shell::kMaxRxSegments, held);
    if (f != shell::RxFrameFault::kNone || (b->ol_flags & ~shell::kRxOlFlags) != 0) {
      violations_->Add(
          f != shell::RxFrameFault::kNone
              ? absl::StrCat("rx_burst frame in slot ", k, ": ", shell::RxFrameFaultName(f))
              : absl::StrFormat("rx_burst frame in slot %d: ol_flags 0x%x are not RX facts", k,
                                b->ol_flags & ~shell::kRxOlFlags));
      // Only the head: a bad chain's further segments may not be the
      // plug-in's to give back; what it still holds is reported as leaked.
      FreeOne(b);
      continue;
    }
    bufs[kept++] = b;
  }
  return kept;
}

// --------------------------------------------------------- ConformServices

absl::StatusOr<std::unique_ptr<ConformServices>> ConformServices::Create(
    std::unique_ptr<shell::VfioDeviceIo> io, const std::string& bdf, uint8_t* region,
    uint64_t region_len, uint64_t dma_bytes, uint16_t nb_queues) {
  std::unique_ptr<ConformServices> s(new ConformServices());
  dma_bytes &= ~4095ull;
  if (dma_bytes > region_len) dma_bytes = region_len & ~4095ull;
  const uint64_t iova = reinterpret_cast<uintptr_t>(region);  // iova == vaddr
  s->arena_ = std::make_unique<shell::RegionDmaArena>(region, dma_bytes, iova);
  s->pool_ = std::make_unique<SlotPool>(region + dma_bytes, region_len - dma_bytes, iova + dma_bytes,
                                        &s->violations_);
  ConformServices* self = s.get();
  shell::LogSink sink = [self](int level, std::string_view line) {
    static const char* kLevel[] = {"E", "W", "I", "D"};
    if (self->verbose)
      std::fprintf(stderr, "  plugin[%s] %.*s\n", kLevel[level & 3], static_cast<int>(line.size()),
                   line.data());
    if (self->last_logs.size() >= 64) self->last_logs.erase(self->last_logs.begin());
    self->last_logs.emplace_back(line);
  };
  // The cases' queue count (one, but for multi_queue), as the shell gives
  // VfServices the guest's: buf_alloc on another qid gets what it would get
  // in the shell, nothing.
  NPA_ASSIGN_OR_RETURN(s->vf_, shell::VfServices::Create(std::move(io), bdf, s->arena_.get(), s->pool_.get(),
                                                         nb_queues, std::move(sink)));
  s->faults_ = std::make_unique<FaultServices>(s->vf_->table(), &s->violations_);
  return s;
}

}  // namespace npa::conform
