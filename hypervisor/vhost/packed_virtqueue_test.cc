// Packed virtqueue (VIRTIO 1.1+ §2.8), device side, through VirtQueue (the
// dispatch the session uses). A small driver model below posts chains and
// reads used descriptors as the spec's driver would, so each test runs many
// laps of the ring.
#include "hypervisor/vhost/packed_virtqueue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "hypervisor/vhost/virtqueue.h"

namespace npa::agent {
namespace {

constexpr uint16_t kAvailUsedMask = NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED;

class PackedRing : public ::testing::Test {
 protected:
  void TearDown() override {
    if (efd_ >= 0) close(efd_);
  }
  void Init(uint32_t num, uint16_t base, bool event_idx, int call_fd = -1) {
    num_ = num;
    arena_.assign(0x40000, 0);
    const uint64_t b = reinterpret_cast<uint64_t>(arena_.data());
    mem_ = *GuestMemory::FromRegions({{b, b, arena_.size(), arena_.data()}});
    l_.num = num;
    l_.is_packed = true;
    l_.packed = {num, reinterpret_cast<npa_vring_packed_desc*>(arena_.data()),
                 reinterpret_cast<npa_vring_packed_desc_event*>(arena_.data() + 0x8000),
                 reinterpret_cast<npa_vring_packed_desc_event*>(arena_.data() + 0x8010)};
    drv_idx_ = used_idx_ = PackedBaseIdx(base);
    drv_wrap_ = used_wrap_ = PackedBaseWrap(base);
    if (!drv_wrap_) {
      // Resuming in an odd lap (wrap 0): slots before the base were used in
      // this lap (AVAIL = USED = 0), the rest in the lap before (both 1).
      for (uint32_t i = PackedBaseIdx(base); i < num; i++) l_.packed.desc[i].flags = kAvailUsedMask;
    }
    q_.Configure(mem_, l_, base, true, call_fd, event_idx);
  }
  uint64_t Buf(uint32_t slot) { return reinterpret_cast<uint64_t>(arena_.data()) + 0x10000 + slot * 256u; }
  // Driver: post a chain of `lens.size()` descriptors (flags per descriptor
  // from `extra`), head flags last. Returns the buffer id used.
  uint16_t Post(const std::vector<uint32_t>& lens, uint16_t dirflag, uint16_t id) {
    const uint16_t head = drv_idx_;
    const bool head_wrap = drv_wrap_;
    uint16_t head_flags = 0;
    for (size_t k = 0; k < lens.size(); k++) {
      npa_vring_packed_desc& d = l_.packed.desc[drv_idx_];
      d.addr = Buf(drv_idx_);
      d.len = lens[k];
      d.id = id;
      uint16_t f = dirflag | (k + 1 < lens.size() ? NPA_VRING_DESC_F_NEXT : 0);
      f |= drv_wrap_ ? NPA_VRING_PACKED_F_AVAIL : NPA_VRING_PACKED_F_USED;
      if (k == 0) {
        head_flags = f;
      } else {
        __atomic_store_n(&d.flags, f, __ATOMIC_RELEASE);
      }
      if (++drv_idx_ == num_) {
        drv_idx_ = 0;
        drv_wrap_ = !drv_wrap_;
      }
    }
    (void)head_wrap;
    __atomic_store_n(&l_.packed.desc[head].flags, head_flags, __ATOMIC_RELEASE);
    chains_.push_back(static_cast<uint16_t>(lens.size()));
    return id;
  }
  // TX frame: one descriptor, header + `n` bytes of `fill`.
  void PostTx(uint32_t n, uint8_t fill, uint16_t id) {
    std::memset(reinterpret_cast<uint8_t*>(Buf(drv_idx_)), 0, 12);
    std::memset(reinterpret_cast<uint8_t*>(Buf(drv_idx_)) + 12, fill, n);
    Post({12 + n}, 0, id);
  }
  // Driver: take one used descriptor if there is one.
  bool TakeUsed(uint16_t* id, uint32_t* len) {
    const npa_vring_packed_desc& d = l_.packed.desc[used_idx_];
    const uint16_t f = __atomic_load_n(&d.flags, __ATOMIC_ACQUIRE);
    const bool a = f & NPA_VRING_PACKED_F_AVAIL, u = f & NPA_VRING_PACKED_F_USED;
    if (a != used_wrap_ || u != used_wrap_) return false;
    *id = d.id;
    *len = d.len;
    const uint16_t n = chains_.front();
    chains_.erase(chains_.begin());
    used_idx_ = static_cast<uint16_t>(used_idx_ + n);
    if (used_idx_ >= num_) {
      used_idx_ = static_cast<uint16_t>(used_idx_ - num_);
      used_wrap_ = !used_wrap_;
    }
    return true;
  }
  uint64_t Calls() {
    uint64_t v = 0;
    if (read(efd_, &v, sizeof(v)) != sizeof(v)) return 0;
    return v;
  }

  uint32_t num_ = 0;
  std::vector<uint8_t> arena_;
  std::shared_ptr<const GuestMemory> mem_;
  RingLayout l_{};
  VirtQueue q_;
  uint16_t drv_idx_ = 0, used_idx_ = 0;
  bool drv_wrap_ = true, used_wrap_ = true;
  std::vector<uint16_t> chains_;  // descriptors per posted chain, in order
  QueueCounters c_{};
  std::string v_;
  int efd_ = -1;
};

class PackedTest : public PackedRing, public ::testing::WithParamInterface<uint32_t> {
 protected:
  void SetUp() override { Init(GetParam(), npa_vring_packed_base(0, 1), false); }
};

// Several laps of TX: every frame seen once, in order, with its bytes; the
// used ids come back in order; the base after Stop is where the driver is.
TEST_P(PackedTest, TxRoundTripsOverSeveralLaps) {
  const uint32_t total = num_ * 5 + 3;
  uint32_t sent = 0, seen = 0, back = 0;
  GuestFrame f[8];
  for (int iter = 0; iter < 10000 && back < total; iter++) {
    while (sent < total && sent - back < num_ && sent - back < 5) {
      PostTx(20 + sent % 40, static_cast<uint8_t>(sent), static_cast<uint16_t>(sent % num_));
      sent++;
    }
    const uint16_t got = q_.PeekTx(f, 8, &c_, &v_);
    ASSERT_TRUE(v_.empty()) << v_;
    for (uint16_t k = 0; k < got; k++, seen++) {
      ASSERT_EQ(f[k].len, 20 + seen % 40);
      ASSERT_EQ(static_cast<uint8_t*>(f[k].segs[0].iov_base)[0], static_cast<uint8_t>(seen));
      ASSERT_EQ(f[k].head, seen % num_);
    }
    q_.ReleaseTx(got);
    uint16_t id;
    uint32_t len;
    while (TakeUsed(&id, &len)) {
      ASSERT_EQ(id, back % num_);
      ASSERT_EQ(len, 0u);
      back++;
    }
  }
  EXPECT_EQ(back, total);
  EXPECT_EQ(c_.tx_packets, total);
  EXPECT_EQ(q_.Stop(), npa_vring_packed_base(drv_idx_, drv_wrap_));
}

// RX with chains of two descriptors and mergeable frames spanning several
// chains, across the end of the ring.
TEST_P(PackedTest, RxMergeableAcrossTheWrap) {
  std::vector<uint8_t> frame(300);
  for (size_t i = 0; i < frame.size(); i++) frame[i] = static_cast<uint8_t>(i * 7);
  iovec seg{frame.data(), frame.size()};
  PacketRef p{nullptr, &seg, 1, 300};
  uint32_t delivered = 0;
  uint16_t next_id = 0;
  for (int lap = 0; lap < 4 * static_cast<int>(num_); lap++) {
    // 2-descriptor chains of 64 + 64 bytes: 312 bytes need 3 chains.
    while (2 * (chains_.size() + 1) <= num_ && chains_.size() < 6) {
      Post({64, 64}, NPA_VRING_DESC_F_WRITE, next_id);
      next_id = static_cast<uint16_t>((next_id + 1) % 1000);
    }
    if (chains_.size() < 3) break;  // ring too small for one frame
    ASSERT_EQ(q_.EnqueueRx(&p, 1, &c_, &v_), 1);
    ASSERT_TRUE(v_.empty()) << v_;
    ASSERT_EQ(c_.rx_dropped, 0u);
    // The frame: 3 used descriptors, num_buffers 3 in the first buffer.
    uint16_t id[3];
    uint32_t len[3];
    const uint16_t first_slot = used_idx_;
    for (int k = 0; k < 3; k++) ASSERT_TRUE(TakeUsed(&id[k], &len[k])) << k;
    EXPECT_EQ(len[0] + len[1] + len[2], 312u);
    const uint8_t* b0 = reinterpret_cast<const uint8_t*>(Buf(first_slot));
    EXPECT_EQ(b0[10] | (b0[11] << 8), 3);
    EXPECT_EQ(b0[12], frame[0]);
    delivered++;
  }
  EXPECT_EQ(c_.rx_packets, delivered);
  EXPECT_GE(delivered, num_ / 2);
}

INSTANTIATE_TEST_SUITE_P(Sizes, PackedTest, ::testing::Values(8u, 7u, 256u, 100u));

class PackedFixed : public PackedRing {
 protected:
  void SetUp() override { Init(8, npa_vring_packed_base(0, 1), false); }
};

TEST_F(PackedFixed, ConfigureAtABaseWithTheWrapBitClearResumesThere) {
  Init(8, npa_vring_packed_base(5, 0), false);
  PostTx(30, 'x', 42);
  PostTx(30, 'y', 43);
  PostTx(30, 'z', 44);  // slots 5, 6, 7, then 0 of the next lap (wrap 1)
  GuestFrame f[4];
  ASSERT_EQ(q_.PeekTx(f, 4, &c_, &v_), 3) << v_;
  EXPECT_EQ(f[2].head, 44);
  q_.ReleaseTx(1);
  // One released, two in flight: Stop reports slot 6 of the same lap.
  EXPECT_EQ(q_.Stop(), npa_vring_packed_base(6, 0));
  q_.ReleaseTx(2);  // late: swallowed
  q_.Configure(mem_, l_, npa_vring_packed_base(6, 0), true, -1);
  ASSERT_EQ(q_.PeekTx(f, 4, &c_, &v_), 2) << v_;  // the two are read again
  q_.ReleaseTx(2);
  EXPECT_EQ(q_.Stop(), npa_vring_packed_base(0, 1));
}

// A front end that switches ring kinds across a stop while the dataplane
// holds a frame: its late release is swallowed, not applied to the new ring.
TEST_F(PackedFixed, LateReleaseAfterASwitchToSplitIsSwallowed) {
  PostTx(30, 'a', 1);
  GuestFrame f[2];
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 1);
  EXPECT_EQ(q_.Stop(), npa_vring_packed_base(0, 1));  // the frame will be read again
  // Now a split ring of 8 in the same arena, one frame posted.
  RingLayout split{8, reinterpret_cast<npa_vring_desc*>(arena_.data() + 0x20000),
                   reinterpret_cast<npa_vring_avail*>(arena_.data() + 0x21000),
                   reinterpret_cast<npa_vring_used*>(arena_.data() + 0x22000)};
  q_.Configure(mem_, split, 0, true, -1);
  EXPECT_FALSE(q_.packed());
  std::memset(reinterpret_cast<uint8_t*>(Buf(5)), 0, 12);
  split.desc[0] = {Buf(5), 40, 0, 0};
  split.avail->ring[0] = 0;
  __atomic_store_n(&split.avail->idx, 1, __ATOMIC_RELEASE);
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 1);
  q_.ReleaseTx(1);  // the packed frame's late release: swallowed
  EXPECT_EQ(split.used->idx, 0);
  EXPECT_EQ(q_.in_flight(), 1);
  q_.ReleaseTx(1);  // the split frame's
  EXPECT_EQ(split.used->idx, 1);
  EXPECT_TRUE(v_.empty()) << v_;
}

TEST_F(PackedFixed, DescriptorBudgetBoundsOneCall) {
  for (int i = 0; i < 2; i++) Post({12, 0, 0, 30}, 0, static_cast<uint16_t>(i));
  GuestFrame f[4];
  uint32_t budget = 3;
  EXPECT_EQ(q_.PeekTx(f, 4, &c_, &v_, &budget), 1);  // 4 descriptors walked, then stop
  EXPECT_EQ(budget, 0u);
  budget = 100;
  EXPECT_EQ(q_.PeekTx(f, 4, &c_, &v_, &budget), 1);
  EXPECT_EQ(budget, 96u);
  EXPECT_EQ(f[0].nsegs, 1u);
  q_.ReleaseTx(2);
  EXPECT_TRUE(v_.empty()) << v_;
}

TEST_F(PackedFixed, ShortTxFrameIsDroppedAndReturned) {
  Post({12}, 0, 3);
  GuestFrame f[1];
  EXPECT_EQ(q_.PeekTx(f, 1, &c_, &v_), 0);
  EXPECT_EQ(c_.tx_dropped, 1u);
  uint16_t id;
  uint32_t len;
  ASSERT_TRUE(TakeUsed(&id, &len));
  EXPECT_EQ(id, 3);
}

TEST_F(PackedFixed, RxWithoutBuffersKeepsOrDrops) {
  std::vector<uint8_t> b(60, 1);
  iovec s{b.data(), b.size()};
  PacketRef p[2] = {{nullptr, &s, 1, 60}, {nullptr, &s, 1, 60}};
  EXPECT_EQ(q_.EnqueueRx(p, 2, &c_, &v_, RxFull::kKeep), 0);
  EXPECT_EQ(c_.rx_dropped, 0u);
  EXPECT_EQ(q_.EnqueueRx(p, 2, &c_, &v_), 0);
  EXPECT_EQ(c_.rx_dropped, 2u);
  EXPECT_TRUE(v_.empty());
}

// Each violation: the call returns nothing, names the fault, and the queue
// stays inert (a good descriptor after it is not served).
struct Bad {
  const char* name;
  void (*make)(npa_vring_packed_desc* d, uint64_t buf);
  bool rx;
  const char* want;
};
class PackedViolation : public PackedRing, public ::testing::WithParamInterface<Bad> {
 protected:
  void SetUp() override { Init(8, npa_vring_packed_base(0, 1), false); }
};

constexpr uint16_t kA = NPA_VRING_PACKED_F_AVAIL;  // available in lap 1
const Bad kBad[] = {
    {"outside_memory", [](npa_vring_packed_desc* d, uint64_t) { d[0] = {0x10, 64, 0, kA}; }, false,
     "outside guest memory"},
    {"len_too_large", [](npa_vring_packed_desc* d, uint64_t b) { d[0] = {b, 0x7fffffff, 0, kA}; },
     false, "outside guest memory"},
    {"indirect",
     [](npa_vring_packed_desc* d, uint64_t b) { d[0] = {b, 16, 0, kA | NPA_VRING_DESC_F_INDIRECT}; },
     false, "indirect"},
    {"writable_tx",
     [](npa_vring_packed_desc* d, uint64_t b) { d[0] = {b, 64, 0, kA | NPA_VRING_DESC_F_WRITE}; },
     false, "wrong direction"},
    {"readable_rx", [](npa_vring_packed_desc* d, uint64_t b) { d[0] = {b, 64, 0, kA}; }, true,
     "wrong direction"},
    {"used_flags_at_head",
     [](npa_vring_packed_desc* d, uint64_t b) { d[0] = {b, 64, 0, kA | NPA_VRING_PACKED_F_USED}; },
     false, "AVAIL and USED both"},
    {"chain_into_unavailable",
     [](npa_vring_packed_desc* d, uint64_t b) {
       d[0] = {b, 64, 0, kA | NPA_VRING_DESC_F_NEXT};
       d[1] = {b, 64, 0, 0};  // not available in this lap
     },
     false, "not available"},
    {"chain_never_ends",
     [](npa_vring_packed_desc* d, uint64_t b) {
       for (int i = 0; i < 8; i++) d[i] = {b, 0, 0, kA | NPA_VRING_DESC_F_NEXT};
     },
     false, "past the free part"},
};

TEST_P(PackedViolation, MakesTheQueueInertWithAMessage) {
  const Bad& bad = GetParam();
  bad.make(l_.packed.desc, Buf(0));
  GuestFrame f[2];
  if (bad.rx) {
    std::vector<uint8_t> b(60, 1);
    iovec s{b.data(), b.size()};
    PacketRef p{nullptr, &s, 1, 60};
    EXPECT_EQ(q_.EnqueueRx(&p, 1, &c_, &v_), 0);
  } else {
    EXPECT_EQ(q_.PeekTx(f, 2, &c_, &v_), 0);
  }
  EXPECT_NE(v_.find(bad.want), std::string::npos) << v_;
  v_.clear();
  l_.packed.desc[0] = {Buf(0), 64, 0, kA};  // a good one now: not served
  EXPECT_EQ(q_.PeekTx(f, 2, &c_, &v_), 0);
}
INSTANTIATE_TEST_SUITE_P(All, PackedViolation, ::testing::ValuesIn(kBad),
                         [](const auto& i) { return std::string(i.param.name); });

TEST_F(PackedFixed, ChainLongerThanTheCapIsAViolation) {
  Init(256, npa_vring_packed_base(0, 1), false);
  std::vector<uint32_t> lens(kMaxChainDescs + 1, 0);
  lens.back() = 64;
  Post(lens, 0, 1);
  GuestFrame f[1];
  EXPECT_EQ(q_.PeekTx(f, 1, &c_, &v_), 0);
  EXPECT_NE(v_.find("longer than 64"), std::string::npos) << v_;
}

// ---- event suppression (§2.8.10) ----

TEST_F(PackedFixed, DriverEventFlagsGateInterrupts) {
  efd_ = eventfd(0, EFD_NONBLOCK);
  Init(8, npa_vring_packed_base(0, 1), false, efd_);
  GuestFrame f[2];
  PostTx(20, 1, 0);
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 1);
  q_.ReleaseTx(1);
  EXPECT_EQ(Calls(), 1u);  // ENABLE (0) by default
  l_.packed.driver->flags = NPA_VRING_PACKED_EVENT_FLAG_DISABLE;
  PostTx(20, 1, 1);
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 1);
  q_.ReleaseTx(1);
  EXPECT_EQ(Calls(), 0u);
  // Kick suppression: the device area follows set_idle_notify.
  q_.set_idle_notify(true);
  EXPECT_EQ(l_.packed.device->flags, NPA_VRING_PACKED_EVENT_FLAG_ENABLE);
  q_.set_idle_notify(false);
  EXPECT_EQ(l_.packed.device->flags, NPA_VRING_PACKED_EVENT_FLAG_DISABLE);
}

TEST_F(PackedFixed, EventIdxDescModeInterruptsOnlyAtTheNamedSlot) {
  efd_ = eventfd(0, EFD_NONBLOCK);
  Init(8, npa_vring_packed_base(0, 1), true, efd_);
  l_.packed.driver->flags = NPA_VRING_PACKED_EVENT_FLAG_DESC;
  // "Interrupt when slot 2 of the next lap (wrap 0) is used."
  l_.packed.driver->off_wrap = 2;
  GuestFrame f[4];
  uint64_t calls = 0;
  for (int i = 0; i < 12; i++) {
    PostTx(20, 1, static_cast<uint16_t>(i % 8));
    ASSERT_EQ(q_.PeekTx(f, 4, &c_, &v_), 1) << v_;
    q_.ReleaseTx(1);
    uint16_t id;
    uint32_t len;
    ASSERT_TRUE(TakeUsed(&id, &len));
    const uint64_t n = Calls();
    calls += n;
    // The release that wrote used slot 2 of lap 2 is frame 10.
    EXPECT_EQ(n, i == 10 ? 1u : 0u) << i;
  }
  EXPECT_EQ(calls, 1u);
}

}  // namespace
}  // namespace npa::agent
