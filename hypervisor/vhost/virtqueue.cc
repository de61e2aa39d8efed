#include "hypervisor/vhost/virtqueue.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace npa::agent {

void VirtQueue::Configure(std::shared_ptr<const GuestMemory> mem, const RingLayout& layout,
                          uint16_t base, bool mergeable, int call_fd, bool event_idx) {
  packed_mode_ = layout.is_packed;
  if (packed_mode_) {
    configured_ = false;  // the split state stays as Stop() left it
    if (!packed_) packed_ = std::make_unique<PackedVirtQueue>();
    packed_->set_idle_notify(idle_notify_);
    packed_->Configure(std::move(mem), layout.packed, base, mergeable, event_idx, call_fd);
    call_fd_ = call_fd;
    return;
  }
  event_idx_ = event_idx;
  if (orphaned_ > 0 && mem_ != nullptr && mem_ != mem) holds_.push_back(mem_);
  mem_ = std::move(mem);
  ring_ = layout;
  mask_ = layout.num - 1;
  mergeable_ = mergeable;
  call_fd_ = call_fd;
  hint_ = 0;
  last_avail_ = used_shadow_ = used_published_ = base;
  pending_.assign(layout.num, Pending{});
  pend_rd_ = pend_wr_ = 0;
  configured_ = true;
  set_idle_notify(idle_notify_);
}

void VirtQueue::Remap(std::shared_ptr<const GuestMemory> mem, const RingLayout& layout) {
  if (packed_mode_) return packed_->Remap(std::move(mem), layout.packed);
  // Frames handed out still point into the old mapping: keep it until they
  // are released.
  if ((in_flight() > 0 || orphaned_ > 0) && mem_ != mem) holds_.push_back(mem_);
  mem_ = std::move(mem);
  ring_.desc = layout.desc;
  ring_.avail = layout.avail;
  ring_.used = layout.used;
  hint_ = 0;
}

uint16_t VirtQueue::Stop() {
  if (packed_mode_) return packed_->Stop();
  if (!configured_) return last_avail_;
  for (uint32_t i = pend_rd_; i != pend_wr_; ++i) {
    if (!pending_[i & mask_].dropped) ++orphaned_;
  }
  if (orphaned_ == 0) holds_.clear();
  pend_rd_ = pend_wr_ = 0;
  configured_ = false;  // mem_ stays (and so stays mapped) until the next Configure
  // In-order completion: everything before used_shadow_ went back to the
  // guest, nothing after it did. Restarting from here re-reads in-flight
  // chains rather than leaking them.
  last_avail_ = used_shadow_;
  return used_shadow_;
}

void VirtQueue::set_idle_notify(bool want_kicks) {
  idle_notify_ = want_kicks;
  if (packed_mode_) return packed_->set_idle_notify(want_kicks);
  if (!configured_) return;
  __atomic_store_n(&ring_.used->flags, want_kicks ? 0 : NPA_VRING_USED_F_NO_NOTIFY,
                   __ATOMIC_RELAXED);
  if (event_idx_) {
    // §2.7.10.1: with EVENT_IDX the driver ignores NO_NOTIFY and kicks when
    // avail->idx passes avail_event. Wanting kicks: at the next entry we
    // read. Not wanting them: one behind, so only a full 2^16 lap kicks.
    __atomic_store_n(npa_vring_avail_event(ring_.used, ring_.num),
                     static_cast<uint16_t>(want_kicks ? last_avail_ : last_avail_ - 1),
                     __ATOMIC_RELAXED);
  }
  // Order the flag store before the caller's next avail->idx load (store ->
  // load needs a full fence): otherwise a guest that read NO_NOTIFY just
  // before we cleared it skips the kick and we miss its frame while asleep.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int32_t VirtQueue::AvailEntries(std::string* violation) {
  // Acquire: the ring entries (and descriptors) the driver wrote before
  // bumping idx must be visible to the reads that follow (§2.7.13.3).
  return CountAvail(__atomic_load_n(&ring_.avail->idx, __ATOMIC_ACQUIRE), violation);
}

int32_t VirtQueue::CountAvail(uint16_t idx, std::string* violation) {
  // The driver can never have more than num buffers outstanding (made
  // available and not yet used); a larger gap is a corrupt or hostile index.
  const uint16_t outstanding = static_cast<uint16_t>(idx - used_shadow_);
  if (outstanding > ring_.num) {
    *violation = absl::StrFormat("avail idx jumped to %u with used idx %u (ring size %u)", idx,
                                 used_shadow_, ring_.num);
    return -1;
  }
  return static_cast<uint16_t>(idx - last_avail_);
}

namespace {
// One used element at *shadow (then advanced); published later, per burst.
// Free of the members so that loops can keep the ring state in locals.
inline void WriteUsed(npa_vring_used_elem* uring, uint32_t mask, uint16_t* shadow, uint16_t head,
                      uint32_t len) {
  npa_vring_used_elem* e = &uring[*shadow & mask];
  e->id = head;
  e->len = len;
  ++*shadow;
}
}  // namespace

void VirtQueue::PushUsed(uint16_t head, uint32_t len) {
  WriteUsed(ring_.used->ring, mask_, &used_shadow_, head, len);
}

void VirtQueue::PublishUsedAndNotify() {
  if (used_shadow_ == used_published_) return;
  const uint16_t old = used_published_;
  // Release: the used elements (and, for RX, the packet bytes) written above
  // must be visible before the index that hands them to the driver (§2.7.8).
  // One store per burst.
  __atomic_store_n(&ring_.used->idx, used_shadow_, __ATOMIC_RELEASE);
  used_published_ = used_shadow_;
  if (call_fd_ < 0) return;
  // Full fence between our used->idx store and the avail->flags load: a
  // driver that re-enabled interrupts after checking the old used->idx must
  // either see our new idx or be seen by us (store->load, §2.7.10).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  bool notify;
  if (event_idx_) {
    // §2.7.7.2: interrupt only if this publish moved used->idx past the
    // used_event the driver left after the avail ring (it ignores flags).
    const uint16_t ev = __atomic_load_n(npa_vring_used_event(ring_.avail, ring_.num),
                                        __ATOMIC_RELAXED);
    notify = npa_vring_need_event(ev, used_shadow_, old);
  } else {
    const uint16_t flags = __atomic_load_n(&ring_.avail->flags, __ATOMIC_RELAXED);
    notify = !(flags & NPA_VRING_AVAIL_F_NO_INTERRUPT);
  }
  if (notify) {
    const uint64_t one = 1;
    // Non-blocking eventfd (checked at SET_VRING_CALL): a full counter is
    // the only failure and means the guest has a wakeup pending anyway.
    ssize_t r = ::write(call_fd_, &one, sizeof(one));
    (void)r;
  }
}

uint16_t VirtQueue::PeekTx(GuestFrame* out, uint16_t n, QueueCounters* c, std::string* violation,
                          uint32_t* desc_budget) {
  if (packed_mode_) [[unlikely]] return packed_->PeekTx(out, n, c, violation, desc_budget);
  if (!configured_ || n == 0) return 0;
  // Acquire as in AvailEntries. An index equal to last_avail_ is the empty
  // poll, and never a violation (idx - used_shadow_ is then what we hold in
  // flight, at most num): return before any other work.
  const uint16_t idx = __atomic_load_n(&ring_.avail->idx, __ATOMIC_ACQUIRE);
  if (idx == last_avail_) return 0;
  const int32_t avail = CountAvail(idx, violation);
  if (avail <= 0) return 0;
  const volatile uint16_t* aring = ring_.avail->ring;
  const uint32_t wr0 = pend_wr_;
  const uint16_t used0 = used_shadow_;
  ChainBuf bufs[kMaxFrameSegs + 1];
  uint16_t produced = 0;
  uint16_t consumed = 0;
  uint64_t bytes = 0, dropped = 0;
  // Fairness (dataplane.h): the work of one call is bounded by descriptors
  // walked, not only by frames returned, so chains of zero-length
  // descriptors cannot make a poll arbitrarily long.
  // Every chain costs at least one descriptor, so the budget caps the
  // chains taken (lim); the slow path, which can walk more per chain,
  // lowers lim by what it walked beyond one. The fast path pays nothing.
  const uint32_t budget = desc_budget != nullptr ? *desc_budget : UINT32_MAX;
  uint32_t extra = 0;  // descriptors walked beyond one per chain
  int32_t lim = budget < static_cast<uint32_t>(avail) ? static_cast<int32_t>(budget) : avail;
  const volatile npa_vring_desc* const desc = ring_.desc;
  const uint16_t num = ring_.num;
  Pending* const pend = pending_.data();
  const uint16_t mask = mask_, last = last_avail_;
  // The ring state the fast path uses sits in locals (stores through `out`
  // could alias the members); the full walk below syncs them around itself.
  uint32_t wr = pend_wr_;
  GuestMemory::Lookup look(*mem_, hint_);
  while (produced < n && consumed < lim) {
    const uint16_t head = aring[static_cast<uint16_t>(last + consumed) & mask];
    GuestFrame& f = out[produced];
    // Fast path, the common case: one readable descriptor holding header and
    // frame. Same checks as WalkChain on one volatile read of the
    // descriptor; anything else takes the full walk (which re-reads and
    // re-checks on its own).
    if (head < num) {
      const volatile npa_vring_desc* vd = &desc[head];
      const uint16_t flags = vd->flags;
      const uint64_t addr = vd->addr;
      const uint32_t len = vd->len;
      if (!(flags & (NPA_VRING_DESC_F_NEXT | NPA_VRING_DESC_F_INDIRECT | NPA_VRING_DESC_F_WRITE)) &&
          len > kNetHdrLen && len - kNetHdrLen <= kMaxFrameLen) {
        uint8_t* host = look.ToHost(addr, len);
        if (host != nullptr) {
          std::memcpy(&f.hdr, host, kNetHdrLen);
          f.segs[0] = {host + kNetHdrLen, len - kNetHdrLen};
          f.nsegs = 1;
          f.len = len - kNetHdrLen;
          f.head = head;
          pend[wr++ & mask] = {head, false};
          bytes += len - kNetHdrLen;
          ++produced;
          ++consumed;
          continue;
        }
      }
    }
    pend_wr_ = wr;
    hint_ = look.hint();
    ChainWalk w;
    ChainError e;
    if (!WalkChain(ring_.desc, ring_.num, head, *mem_, &hint_, ChainDir::kReadable, bufs,
                   kMaxFrameSegs + 1, &w, &e)) {
      *violation = e.Describe();
      pend_wr_ = wr0;  // device is broken: forget this burst entirely
      used_shadow_ = used0;
      return 0;
    }
    ++consumed;
    extra += w.ndesc - 1u;  // ndesc >= 1
    const uint32_t walked = consumed + extra;
    lim = walked >= budget ? consumed
                           : static_cast<int32_t>(std::min<uint32_t>(static_cast<uint32_t>(avail),
                                                                     consumed + (budget - walked)));
    const bool ok = !w.truncated && w.total_len > kNetHdrLen &&
                    w.total_len - kNetHdrLen <= kMaxFrameLen && SplitNetHdr(bufs, w.nbufs, &f);
    if (ok) {
      f.head = head;
      pending_[pend_wr_++ & mask_] = {head, false};
      bytes += f.len;
      ++produced;
    } else if (pend_wr_ == pend_rd_) {
      PushUsed(head, 0);  // nothing in flight before it: return it right away
      ++dropped;
    } else {
      pending_[pend_wr_++ & mask_] = {head, true};
      ++dropped;
    }
    wr = pend_wr_;
    look.Sync(hint_);
  }
  pend_wr_ = wr;
  hint_ = look.hint();
  last_avail_ = static_cast<uint16_t>(last_avail_ + consumed);
  PublishUsedAndNotify();
  if (desc_budget != nullptr) *desc_budget -= std::min<uint32_t>(consumed + extra, *desc_budget);
  c->tx_packets += produced;
  c->tx_bytes += bytes;
  c->tx_dropped += dropped;
  return produced;
}

void VirtQueue::ReleaseTx(uint16_t n) {
  if (packed_ != nullptr) [[unlikely]] {
    // A front end may switch ring kinds across a stop (a reset, new
    // features) while the dataplane still holds frames of the old kind:
    // those are the oldest, so the implementation that handed them out
    // swallows them first, and the other one never sees their release.
    if (packed_mode_) {
      const uint32_t s = std::min<uint32_t>(orphaned_, n);
      orphaned_ -= s;
      n = static_cast<uint16_t>(n - s);
      if (orphaned_ == 0 && !configured_) holds_.clear();
      return packed_->ReleaseTx(n);
    }
    const uint16_t s = static_cast<uint16_t>(std::min<uint32_t>(packed_->orphaned(), n));
    if (s > 0) {
      packed_->ReleaseTx(s);
      n = static_cast<uint16_t>(n - s);
    }
  }
  const uint32_t swallow = std::min<uint32_t>(orphaned_, n);
  orphaned_ -= swallow;
  n = static_cast<uint16_t>(n - swallow);
  if (!configured_) {
    if (orphaned_ == 0 && !holds_.empty()) holds_.clear();
    return;
  }
  // The loop's state in locals: the used-element stores go to guest memory,
  // which the compiler must assume could alias the members, and would make
  // it reload each one every entry.
  const Pending* const pend = pending_.data();
  npa_vring_used_elem* const uring = ring_.used->ring;
  const uint32_t mask = mask_, wr = pend_wr_;
  uint32_t rd = pend_rd_;
  uint16_t shadow = used_shadow_;
  while (rd != wr) {
    const Pending p = pend[rd & mask];
    if (!p.dropped) {
      if (n == 0) break;
      --n;
    }
    WriteUsed(uring, mask, &shadow, p.head, 0);  // TX is read-only: 0 bytes written (§2.7.8)
    ++rd;
  }
  pend_rd_ = rd;
  used_shadow_ = shadow;
  if (rd == wr && orphaned_ == 0 && !holds_.empty()) holds_.clear();
  PublishUsedAndNotify();
}


uint16_t VirtQueue::EnqueueRx(const PacketRef* pkts, uint16_t n, QueueCounters* c,
                              std::string* violation, RxFull full) {
  if (packed_mode_) [[unlikely]] return packed_->EnqueueRx(pkts, n, c, violation, full);
  if (!configured_) {
    if (full == RxFull::kDrop) c->rx_dropped += n;
    return 0;
  }
  const int32_t avail = AvailEntries(violation);
  if (avail < 0) return 0;
  const volatile uint16_t* aring = ring_.avail->ring;
  // The ring state in locals for the loop (the frame copies into guest
  // memory could alias the members as far as the compiler knows); used
  // elements go to `shadow`, stored back to used_shadow_ before publishing.
  const volatile npa_vring_desc* const desc = ring_.desc;
  npa_vring_used_elem* const uring = ring_.used->ring;
  const uint32_t mask = mask_;
  const uint16_t num = static_cast<uint16_t>(ring_.num), last = last_avail_;
  uint16_t shadow = used_shadow_;
  GuestMemory::Lookup look(*mem_, hint_);
  ChainBuf bufs[kMaxFrameSegs];
  uint16_t consumed = 0;
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
    const uint16_t consumed0 = consumed;
    const uint16_t used0 = shadow;
    // Fast path: one writable descriptor big enough for header + frame, and
    // a frame in one or two segments (what a burst of small frames looks
    // like: from the uplink one, from another guest two, the checked
    // header copy and the rest; see dataplane.h).
    if (consumed < avail && p.nsegs >= 1 && p.nsegs <= 2 &&
        p.segs[0].iov_len + (p.nsegs == 2 ? p.segs[1].iov_len : 0) == p.len) {
      const uint16_t head = aring[static_cast<uint16_t>(last + consumed) & mask];
      if (head < num) {
        const volatile npa_vring_desc* vd = &desc[head];
        const uint16_t flags = vd->flags;
        const uint64_t addr = vd->addr;
        const uint32_t len = vd->len;
        const uint32_t need = kNetHdrLen + p.len;
        if ((flags & (NPA_VRING_DESC_F_NEXT | NPA_VRING_DESC_F_INDIRECT |
                      NPA_VRING_DESC_F_WRITE)) == NPA_VRING_DESC_F_WRITE &&
            len >= need) {
          uint8_t* host = look.ToHost(addr, len);  // all of it, as WalkChain would
          if (host != nullptr) {
            std::memcpy(host, &hdr, kNetHdrLen);
            std::memcpy(host + kNetHdrLen, p.segs[0].iov_base, p.segs[0].iov_len);
            if (p.nsegs == 2) {
              std::memcpy(host + kNetHdrLen + p.segs[0].iov_len, p.segs[1].iov_base,
                          p.segs[1].iov_len);
            }
            WriteUsed(uring, mask, &shadow, head, need);
            ++consumed;
            ++delivered;
            bytes += p.len;
            continue;
          }
        }
      }
    }
    uint8_t* nb[2] = {nullptr, nullptr};  // where num_buffers' two bytes went
    bool no_room = false;
    uint32_t frame_descs = 0;
    while (src.left > 0) {
      if (consumed == avail) {
        no_room = true;
        break;
      }
      if (frame_descs >= kMaxRxDescsPerFrame) break;  // tiny buffers: drop, keep the chains
      const uint16_t head = aring[static_cast<uint16_t>(last + consumed) & mask];
      ChainWalk w;
      ChainError e;
      uint32_t hint = look.hint();
      const bool walked = WalkChain(ring_.desc, ring_.num, head, *mem_, &hint,
                                    ChainDir::kWritable, bufs, kMaxFrameSegs, &w, &e);
      look.Sync(hint);
      if (!walked) {
        *violation = e.Describe();
        used_shadow_ = shadow;  // as before the locals: the queue is broken now
        return 0;
      }
      frame_descs += w.ndesc;
      uint64_t cap = 0;
      for (uint16_t b = 0; b < w.nbufs; ++b) cap += bufs[b].len;
      if (!mergeable_ && cap < src.left) {
        break;  // one chain must hold it all (§5.1.6.3.1); drop, keep the chain
      }
      if (consumed == consumed0) {
        nb[0] = StreamByte(bufs, w.nbufs, 10);
        nb[1] = StreamByte(bufs, w.nbufs, 11);
      }
      uint32_t written = 0;
      for (uint16_t b = 0; b < w.nbufs && src.left > 0; ++b) {
        written += src.CopyTo(bufs[b].host, bufs[b].len);
      }
      WriteUsed(uring, mask, &shadow, head, written);
      ++consumed;
    }
    if (no_room || src.left > 0) {
      // Undo this frame's chains: nothing was published, the guest never
      // sees the partial copy.
      consumed = consumed0;
      shadow = used0;
      if (no_room) break;
      ++dropped;
      continue;
    }
    const uint16_t nbuf = static_cast<uint16_t>(consumed - consumed0);
    if (nbuf > 1) {
      if (nb[0] == nullptr || nb[1] == nullptr) {
        // The first chain was shorter than the header; a frame cannot be
        // described to the guest that way. Treat it as a broken ring.
        *violation = "RX buffer too short to hold the virtio-net header";
        used_shadow_ = shadow;
        return 0;
      }
      *nb[0] = static_cast<uint8_t>(nbuf & 0xff);  // little-endian le16
      *nb[1] = static_cast<uint8_t>(nbuf >> 8);
    }
    ++delivered;
    bytes += p.len;
  }
  // Frames [i, n) found the ring full.
  if (full == RxFull::kDrop) dropped += n - i;
  hint_ = look.hint();
  used_shadow_ = shadow;
  last_avail_ = static_cast<uint16_t>(last + consumed);
  PublishUsedAndNotify();
  c->rx_packets += delivered;
  c->rx_bytes += bytes;
  c->rx_dropped += dropped;
  return i;
}

}  // namespace npa::agent
