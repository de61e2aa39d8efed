#include "hypervisor/vhost/packed_virtqueue.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace npa::agent {

void PackedVirtQueue::Configure(std::shared_ptr<const GuestMemory> mem,
                                const PackedRingLayout& layout, uint16_t base, bool mergeable,
                                bool event_idx, int call_fd) {
  if (orphaned_ > 0 && mem_ != nullptr && mem_ != mem) holds_.push_back(mem_);
  mem_ = std::move(mem);
  ring_ = layout;
  mergeable_ = mergeable;
  event_idx_ = event_idx;
  call_fd_ = call_fd;
  hint_ = 0;
  // In-order use: after a stop nothing is in flight, so the used position is
  // the avail position (the base carries one pair for both, as DPDK's).
  avail_idx_ = used_idx_ = signalled_idx_ = static_cast<uint16_t>(PackedBaseIdx(base) % layout.num);
  avail_wrap_ = used_wrap_ = signalled_wrap_ = PackedBaseWrap(base);
  outstanding_ = 0;
  uint32_t p = 1;
  while (p < layout.num) p <<= 1;
  pending_.assign(p, Pending{});
  pmask_ = p - 1;
  batch_.clear();
  batch_.reserve(layout.num);
  pend_rd_ = pend_wr_ = 0;
  inert_ = false;
  configured_ = true;
  set_idle_notify(want_kicks_);
}

void PackedVirtQueue::Remap(std::shared_ptr<const GuestMemory> mem, const PackedRingLayout& layout) {
  if ((in_flight() > 0 || orphaned_ > 0) && mem_ != mem) holds_.push_back(mem_);
  mem_ = std::move(mem);
  ring_.desc = layout.desc;
  ring_.driver = layout.driver;
  ring_.device = layout.device;
  hint_ = 0;
}

uint16_t PackedVirtQueue::Stop() {
  if (!configured_) return npa_vring_packed_base(avail_idx_, avail_wrap_);
  for (uint32_t i = pend_rd_; i != pend_wr_; ++i) {
    if (!pending_[i & pmask_].dropped) ++orphaned_;
  }
  if (orphaned_ == 0) holds_.clear();
  pend_rd_ = pend_wr_ = 0;
  configured_ = false;
  // Everything before the used position went back to the guest, nothing
  // after it did: a restart there reads the in-flight chains again.
  avail_idx_ = used_idx_;
  avail_wrap_ = used_wrap_;
  outstanding_ = 0;
  return npa_vring_packed_base(used_idx_, used_wrap_);
}

void PackedVirtQueue::set_idle_notify(bool want_kicks) {
  want_kicks_ = want_kicks;
  if (!configured_) return;
  // §2.8.10: the device area tells the driver whether to kick. ENABLE and
  // DISABLE are enough for a poller (DESC would only say "kick at slot x").
  __atomic_store_n(&ring_.device->flags,
                   static_cast<uint16_t>(want_kicks ? NPA_VRING_PACKED_EVENT_FLAG_ENABLE
                                                    : NPA_VRING_PACKED_EVENT_FLAG_DISABLE),
                   __ATOMIC_RELAXED);
  // Store -> load: the flag must be visible before the caller's next look at
  // the ring, or a driver that read DISABLE skips its kick while we sleep.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void PackedVirtQueue::Fail(std::string* violation, const ChainError& e) {
  *violation = e.Describe();
  inert_ = true;
}

void PackedVirtQueue::AdvanceAvail(uint16_t ndesc) {
  uint32_t i = avail_idx_ + ndesc;
  if (i >= ring_.num) {
    i -= ring_.num;
    avail_wrap_ = !avail_wrap_;
  }
  avail_idx_ = static_cast<uint16_t>(i);
  outstanding_ += ndesc;
}

void PackedVirtQueue::AddUsed(uint16_t id, uint32_t len, uint16_t ndesc) {
  // §2.8.1: a used descriptor has AVAIL = USED = the device's wrap counter.
  const uint16_t flags =
      used_wrap_ ? static_cast<uint16_t>(NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED) : 0;
  batch_.push_back({used_idx_, id, len, flags});
  uint32_t i = used_idx_ + ndesc;
  if (i >= ring_.num) {
    i -= ring_.num;
    used_wrap_ = !used_wrap_;
  }
  used_idx_ = static_cast<uint16_t>(i);
  outstanding_ -= ndesc;
}

void PackedVirtQueue::FlushUsedAndNotify() {
  if (batch_.empty()) return;
  volatile npa_vring_packed_desc* d = ring_.desc;
  for (const Used& u : batch_) {
    d[u.slot].id = u.id;
    d[u.slot].len = u.len;
  }
  // Release on each flags store: id and len (and, for RX, the packet bytes)
  // are visible before the flags that hand the descriptor back (§2.8.21).
  // The first descriptor's flags go last, so a driver polling it sees the
  // whole burst at once (a mergeable frame's buffers together).
  for (size_t k = 1; k < batch_.size(); ++k) {
    __atomic_store_n(&ring_.desc[batch_[k].slot].flags, batch_[k].flags, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&ring_.desc[batch_[0].slot].flags, batch_[0].flags, __ATOMIC_RELEASE);
  batch_.clear();
  const uint16_t old_idx = signalled_idx_;
  const bool old_wrap = signalled_wrap_;
  // The interrupt decision covers what moved since the previous flush, with
  // or without a call fd (one may be set later).
  signalled_idx_ = used_idx_;
  signalled_wrap_ = used_wrap_;
  if (call_fd_ < 0) return;
  // Full fence between our flags stores and the load of the driver's event
  // suppression structure (§2.8.10): a driver that re-enabled interrupts
  // after finding nothing used must see our descriptors or be seen by us.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  const volatile npa_vring_packed_desc_event* ev = ring_.driver;
  const uint16_t flags = ev->flags;
  const uint16_t off_wrap = ev->off_wrap;
  bool notify = flags != NPA_VRING_PACKED_EVENT_FLAG_DISABLE;
  if (flags == NPA_VRING_PACKED_EVENT_FLAG_DESC && event_idx_) {
    // Interrupt only if we wrote a used descriptor at the slot (and lap) the
    // driver named: positions are counted modulo two laps, lap parity from
    // the wrap counter, and the event must lie in [signalled, used).
    const uint32_t n2 = 2u * ring_.num;
    const uint32_t off = off_wrap & 0x7fff;
    const bool ew = (off_wrap >> NPA_VRING_PACKED_EVENT_F_WRAP_CTR) != 0;
    if (off < ring_.num) {
      auto lin = [this](uint32_t idx, bool wrap) { return idx + (wrap ? 0u : ring_.num); };
      const uint32_t old = lin(old_idx, old_wrap);
      const uint32_t moved = (lin(used_idx_, used_wrap_) + n2 - old) % n2;
      const uint32_t dist = (lin(off, ew) + n2 - old) % n2;
      notify = dist < moved;
    }  // an offset past the ring is nonsense: interrupt (always safe)
  }
  // DESC without EVENT_IDX (not negotiated) or a reserved value: interrupt.
  if (notify) {
    const uint64_t one = 1;
    ssize_t r = ::write(call_fd_, &one, sizeof(one));  // non-blocking: full = wakeup pending
    (void)r;
  }
}

uint16_t PackedVirtQueue::PeekTx(GuestFrame* out, uint16_t n, QueueCounters* c,
                                 std::string* violation, uint32_t* desc_budget) {
  if (!configured_ || inert_ || n == 0) return 0;
  const uint32_t budget = desc_budget != nullptr ? *desc_budget : UINT32_MAX;
  ChainBuf bufs[kMaxFrameSegs + 1];
  uint32_t walked = 0;
  uint16_t produced = 0;
  uint64_t bytes = 0, dropped = 0;
  const GuestMemory& mem = *mem_;
  // Fairness as for split rings: no new chain once the budget is walked.
  while (produced < n && walked < budget) {
    ChainWalk w;
    ChainError e;
    uint16_t id = 0;
    const PackedWalk r =
        WalkPackedChain(ring_.desc, ring_.num, avail_idx_, avail_wrap_, ring_.num - outstanding_,
                        mem, &hint_, ChainDir::kReadable, bufs, kMaxFrameSegs + 1, &w, &id, &e);
    if (r == PackedWalk::kEmpty) break;
    if (r == PackedWalk::kError) {
      Fail(violation, e);
      break;
    }
    AdvanceAvail(w.ndesc);
    walked += w.ndesc;
    GuestFrame& f = out[produced];
    const bool ok = !w.truncated && w.total_len > kNetHdrLen &&
                    w.total_len - kNetHdrLen <= kMaxFrameLen && SplitNetHdr(bufs, w.nbufs, &f);
    if (ok) {
      f.head = id;
      pending_[pend_wr_++ & pmask_] = {id, w.ndesc, false};
      bytes += f.len;
      ++produced;
    } else if (pend_wr_ == pend_rd_) {
      AddUsed(id, 0, w.ndesc);  // nothing in flight before it: return it now
      ++dropped;
    } else {
      pending_[pend_wr_++ & pmask_] = {id, w.ndesc, true};
      ++dropped;
    }
  }
  FlushUsedAndNotify();
  if (desc_budget != nullptr) *desc_budget -= std::min(walked, *desc_budget);
  c->tx_packets += produced;
  c->tx_bytes += bytes;
  c->tx_dropped += dropped;
  return inert_ ? 0 : produced;
}

void PackedVirtQueue::ReleaseTx(uint16_t n) {
  const uint32_t swallow = std::min<uint32_t>(orphaned_, n);
  orphaned_ -= swallow;
  n = static_cast<uint16_t>(n - swallow);
  if (!configured_) {
    if (orphaned_ == 0 && !holds_.empty()) holds_.clear();
    return;
  }
  while (pend_rd_ != pend_wr_) {
    const Pending p = pending_[pend_rd_ & pmask_];
    if (!p.dropped) {
      if (n == 0) break;
      --n;
    }
    AddUsed(p.id, 0, p.ndesc);  // TX buffers are read-only: 0 bytes written
    ++pend_rd_;
  }
  if (pend_rd_ == pend_wr_ && orphaned_ == 0 && !holds_.empty()) holds_.clear();
  FlushUsedAndNotify();
}

uint16_t PackedVirtQueue::EnqueueRx(const PacketRef* pkts, uint16_t n, QueueCounters* c,
                                    std::string* violation, RxFull full) {
  if (!configured_ || inert_) {
    if (full == RxFull::kDrop) c->rx_dropped += n;
    return 0;
  }
  ChainBuf bufs[kMaxFrameSegs];
  struct Taken {
    uint16_t id, ndesc;
    uint32_t written;
  };
  Taken taken[kMaxRxDescsPerFrame];  // a frame's chains, committed once it fits
  uint16_t delivered = 0;
  uint64_t bytes = 0, dropped = 0;
  uint16_t i = 0;
  for (; i < n; ++i) {
    const PacketRef& p = pkts[i];
    if (p.len > kMaxFrameLen || p.len == 0) {
      ++dropped;
      continue;
    }
    npa_virtio_net_hdr_v1 hdr;
    RxSource src = FrameSource(p, &hdr);
    const uint16_t idx0 = avail_idx_;
    const bool wrap0 = avail_wrap_;
    const uint32_t out0 = outstanding_;
    uint8_t* nb[2] = {nullptr, nullptr};  // where num_buffers' two bytes went
    bool no_room = false, bad = false;
    uint32_t frame_descs = 0;
    uint16_t nchains = 0;
    while (src.left > 0) {
      if (frame_descs >= kMaxRxDescsPerFrame) break;  // tiny buffers: drop, keep the chains
      ChainWalk w;
      ChainError e;
      uint16_t id = 0;
      const PackedWalk r =
          WalkPackedChain(ring_.desc, ring_.num, avail_idx_, avail_wrap_, ring_.num - outstanding_,
                          *mem_, &hint_, ChainDir::kWritable, bufs, kMaxFrameSegs, &w, &id, &e);
      if (r == PackedWalk::kEmpty) {
        no_room = true;
        break;
      }
      if (r == PackedWalk::kError) {
        Fail(violation, e);
        bad = true;
        break;
      }
      frame_descs += w.ndesc;
      uint64_t cap = 0;
      for (uint16_t b = 0; b < w.nbufs; ++b) cap += bufs[b].len;
      if (!mergeable_ && cap < src.left) break;  // one chain must hold it all (§5.1.6.3.1)
      if (nchains == 0) {
        nb[0] = StreamByte(bufs, w.nbufs, 10);
        nb[1] = StreamByte(bufs, w.nbufs, 11);
      }
      uint32_t written = 0;
      for (uint16_t b = 0; b < w.nbufs && src.left > 0; ++b) {
        written += src.CopyTo(bufs[b].host, bufs[b].len);
      }
      taken[nchains++] = {id, w.ndesc, written};
      AdvanceAvail(w.ndesc);
    }
    if (!bad && src.left == 0 && nchains > 1 && (nb[0] == nullptr || nb[1] == nullptr)) {
      *violation = "RX buffer too short to hold the virtio-net header";
      inert_ = true;
      bad = true;
    }
    if (bad || no_room || src.left > 0) {
      // Undo this frame's chains: no used descriptor was queued for them.
      avail_idx_ = idx0;
      avail_wrap_ = wrap0;
      outstanding_ = out0;
      if (bad || no_room) break;
      ++dropped;
      continue;
    }
    if (nchains > 1) {
      *nb[0] = static_cast<uint8_t>(nchains & 0xff);  // little-endian le16
      *nb[1] = static_cast<uint8_t>(nchains >> 8);
    }
    for (uint16_t k = 0; k < nchains; ++k) AddUsed(taken[k].id, taken[k].written, taken[k].ndesc);
    ++delivered;
    bytes += p.len;
  }
  if (inert_) {
    FlushUsedAndNotify();  // frames already delivered stay delivered
    c->rx_packets += delivered;
    c->rx_bytes += bytes;
    c->rx_dropped += dropped;
    return 0;
  }
  if (full == RxFull::kDrop) dropped += n - i;
  FlushUsedAndNotify();
  c->rx_packets += delivered;
  c->rx_bytes += bytes;
  c->rx_dropped += dropped;
  return i;
}

}  // namespace npa::agent
