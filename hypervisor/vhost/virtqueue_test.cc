#include "hypervisor/vhost/virtqueue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

// One ring of 8 entries plus buffers in a local arena (gpa == host address).
class VirtQueueTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kNum = 8;
  void SetUp() override {
    std::memset(arena_, 0, sizeof(arena_));
    const uint64_t base = reinterpret_cast<uint64_t>(arena_);
    mem_ = *GuestMemory::FromRegions({{base, base, sizeof(arena_), arena_}});
    layout_ = {kNum, reinterpret_cast<npa_vring_desc*>(arena_),
               reinterpret_cast<npa_vring_avail*>(arena_ + 256),
               reinterpret_cast<npa_vring_used*>(arena_ + 512)};
    q_.Configure(mem_, layout_, 0, true, -1);
  }
  uint8_t* buf(int i) { return arena_ + 4096 + i * 256; }
  void Post(uint16_t d, uint32_t len, uint16_t flags) {
    layout_.desc[d] = {reinterpret_cast<uint64_t>(buf(d)), len, flags, 0};
    layout_.avail->ring[avail_idx_ % kNum] = d;
    __atomic_store_n(&layout_.avail->idx, ++avail_idx_, __ATOMIC_RELEASE);
  }
  alignas(64) uint8_t arena_[4096 + kNum * 256];
  std::shared_ptr<const GuestMemory> mem_;
  RingLayout layout_;
  VirtQueue q_;
  uint16_t avail_idx_ = 0;
  QueueCounters c_{};
  std::string v_;
};

TEST_F(VirtQueueTest, TxPeekReleaseInOrder) {
  for (uint16_t d = 0; d < 3; ++d) {
    std::memset(buf(d), 0, 12);
    std::memset(buf(d) + 12, 'a' + d, 20);
    Post(d, 32, 0);
  }
  GuestFrame f[4];
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 2);
  EXPECT_EQ(f[0].len, 20u);
  EXPECT_EQ(static_cast<uint8_t*>(f[1].segs[0].iov_base)[0], 'b');
  EXPECT_EQ(layout_.used->idx, 0);
  q_.ReleaseTx(1);
  EXPECT_EQ(layout_.used->idx, 1);
  EXPECT_EQ(layout_.used->ring[0].id, 0u);
  ASSERT_EQ(q_.PeekTx(f, 4, &c_, &v_), 1);
  q_.ReleaseTx(2);
  EXPECT_EQ(layout_.used->idx, 3);
  EXPECT_EQ(c_.tx_packets, 3u);
  EXPECT_TRUE(v_.empty());
}

TEST_F(VirtQueueTest, TooShortTxFrameIsDroppedAndReturned) {
  Post(0, 12, 0);  // header only, no frame
  GuestFrame f[1];
  EXPECT_EQ(q_.PeekTx(f, 1, &c_, &v_), 0);
  EXPECT_EQ(layout_.used->idx, 1);
  EXPECT_EQ(c_.tx_dropped, 1u);
}

TEST_F(VirtQueueTest, AvailIndexJumpIsAViolation) {
  __atomic_store_n(&layout_.avail->idx, kNum + 1, __ATOMIC_RELEASE);
  GuestFrame f[1];
  EXPECT_EQ(q_.PeekTx(f, 1, &c_, &v_), 0);
  EXPECT_NE(v_.find("avail idx jumped"), std::string::npos) << v_;
}

TEST_F(VirtQueueTest, StopReportsOnlyReleasedAndSwallowsLateRelease) {
  Post(0, 40, 0);
  Post(1, 40, 0);
  GuestFrame f[2];
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 2);
  q_.ReleaseTx(1);
  EXPECT_EQ(q_.Stop(), 1);  // frame 1 is in flight: not consumed
  q_.Configure(mem_, layout_, 1, true, -1);
  q_.ReleaseTx(1);  // the old in-flight frame: ignored
  EXPECT_EQ(layout_.used->idx, 1);
  ASSERT_EQ(q_.PeekTx(f, 2, &c_, &v_), 1);  // re-read after restart
  EXPECT_EQ(f[0].head, 1);
}

// VIRTIO_F_RING_EVENT_IDX (§2.7.7.2 / §2.7.10.1): interrupts only when the
// used index passes used_event; avail_event follows set_idle_notify.
TEST_F(VirtQueueTest, EventIdxInterruptsOnlyWhenUsedEventIsCrossed) {
  const int efd = eventfd(0, EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  q_.Configure(mem_, layout_, 0, true, efd, /*event_idx=*/true);
  *npa_vring_used_event(layout_.avail, kNum) = 2;  // "interrupt once used idx passes 2"
  layout_.avail->flags = NPA_VRING_AVAIL_F_NO_INTERRUPT;  // ignored with EVENT_IDX
  auto calls = [efd] {
    uint64_t v = 0;
    return read(efd, &v, sizeof(v)) == sizeof(v) ? v : 0;
  };
  GuestFrame f[1];
  uint64_t per[5];
  for (uint16_t i = 0; i < 5; i++) {
    std::memset(buf(i), 0, 12);
    Post(i, 40, 0);
    ASSERT_EQ(q_.PeekTx(f, 1, &c_, &v_), 1);
    q_.ReleaseTx(1);
    per[i] = calls();
  }
  // used idx goes 1, 2, 3, 4, 5: only the move 2 -> 3 crosses used_event 2.
  EXPECT_EQ(per[0] + per[1], 0u);
  EXPECT_EQ(per[2], 1u);
  EXPECT_EQ(per[3] + per[4], 0u);
  q_.set_idle_notify(true);
  EXPECT_EQ(*npa_vring_avail_event(layout_.used, kNum), 5);  // kick me at the next entry
  q_.set_idle_notify(false);
  EXPECT_EQ(*npa_vring_avail_event(layout_.used, kNum), 4);  // only after a 2^16 lap
  close(efd);
}

TEST_F(VirtQueueTest, RxMergeableSpansBuffers) {
  for (uint16_t d = 0; d < 4; ++d) Post(d, 256, NPA_VRING_DESC_F_WRITE);
  std::string payload(600, 'x');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = char(i % 251);
  iovec seg{payload.data(), payload.size()};
  PacketRef p{nullptr, &seg, 1, uint32_t(payload.size())};
  ASSERT_EQ(q_.EnqueueRx(&p, 1, &c_, &v_), 1) << v_;
  EXPECT_EQ(layout_.used->idx, 3);  // 612 bytes over 256-byte buffers
  npa_virtio_net_hdr_v1 h;
  std::memcpy(&h, buf(0), 12);
  EXPECT_EQ(h.num_buffers, 3);
  std::string got(reinterpret_cast<char*>(buf(0)) + 12, 244);
  got.append(reinterpret_cast<char*>(buf(1)), 256);
  got.append(reinterpret_cast<char*>(buf(2)), 100);
  EXPECT_EQ(got, payload);
  EXPECT_EQ(layout_.used->ring[2].len, 100u);
  // No room for another 600-byte frame (1 buffer left): dropped, ring untouched.
  EXPECT_EQ(q_.EnqueueRx(&p, 1, &c_, &v_), 0);
  EXPECT_EQ(layout_.used->idx, 3);
  EXPECT_EQ(c_.rx_dropped, 1u);
}

// The return value is the prefix taken: an undeliverable frame in the
// middle is taken (dropped, counted), so a caller that releases "the first
// k" (loopback) never sends the frames after it twice.
TEST_F(VirtQueueTest, RxReturnsThePrefixTakenIncludingUndeliverableFrames) {
  q_.Configure(mem_, layout_, 0, /*mergeable=*/false, -1);
  for (uint16_t d = 0; d < 4; ++d) Post(d, 256, NPA_VRING_DESC_F_WRITE);
  std::string small(100, 's'), big(600, 'b');
  iovec s0{small.data(), small.size()}, b0{big.data(), big.size()};
  PacketRef p[3] = {{nullptr, &s0, 1, 100}, {nullptr, &b0, 1, 600}, {nullptr, &s0, 1, 100}};
  // Without MRG_RXBUF the 600-byte frame fits no single 256-byte chain.
  EXPECT_EQ(q_.EnqueueRx(p, 3, &c_, &v_), 3) << v_;
  EXPECT_EQ(c_.rx_packets, 2u);
  EXPECT_EQ(c_.rx_dropped, 1u);
  EXPECT_EQ(layout_.used->idx, 2);
}

TEST_F(VirtQueueTest, RxFullKeepLeavesTheRestUncounted) {
  Post(0, 256, NPA_VRING_DESC_F_WRITE);
  char x[64] = {};
  iovec seg{x, sizeof(x)};
  PacketRef p[3] = {{nullptr, &seg, 1, 64}, {nullptr, &seg, 1, 64}, {nullptr, &seg, 1, 64}};
  EXPECT_EQ(q_.EnqueueRx(p, 3, &c_, &v_, RxFull::kKeep), 1) << v_;
  EXPECT_EQ(c_.rx_packets, 1u);
  EXPECT_EQ(c_.rx_dropped, 0u) << "kept frames are the caller's, not drops";
  EXPECT_EQ(q_.EnqueueRx(p + 1, 2, &c_, &v_, RxFull::kDrop), 0) << v_;
  EXPECT_EQ(c_.rx_dropped, 2u);
}

TEST_F(VirtQueueTest, RxReadableBufferIsAViolation) {
  Post(0, 256, 0);
  char x[64] = {};
  iovec seg{x, sizeof(x)};
  PacketRef p{nullptr, &seg, 1, sizeof(x)};
  EXPECT_EQ(q_.EnqueueRx(&p, 1, &c_, &v_), 0);
  EXPECT_NE(v_.find("wrong direction"), std::string::npos) << v_;
}

// A ring big enough for chains longer than kMaxChainDescs.
class LongChainTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kNum = 256;
  void SetUp() override {
    arena_.assign(64 * 1024, 0);
    const uint64_t base = reinterpret_cast<uint64_t>(arena_.data());
    mem_ = *GuestMemory::FromRegions({{base, base, arena_.size(), arena_.data()}});
    l_ = {kNum, reinterpret_cast<npa_vring_desc*>(arena_.data()),
          reinterpret_cast<npa_vring_avail*>(arena_.data() + 0x1000),
          reinterpret_cast<npa_vring_used*>(arena_.data() + 0x2000)};
    q_.Configure(mem_, l_, 0, true, -1);
  }
  // A TX chain from descriptor `first`: `zeros` zero-length descriptors,
  // then one 72-byte buffer (header + 60-byte frame). Returns the next free
  // descriptor.
  uint16_t Chain(uint16_t first, uint16_t zeros) {
    const uint64_t buf = reinterpret_cast<uint64_t>(arena_.data()) + 0x8000;
    for (uint16_t k = 0; k < zeros; k++)
      l_.desc[first + k] = {buf, 0, NPA_VRING_DESC_F_NEXT, static_cast<uint16_t>(first + k + 1)};
    l_.desc[first + zeros] = {buf, 72, 0, 0};
    l_.avail->ring[avail_ % kNum] = first;
    __atomic_store_n(&l_.avail->idx, ++avail_, __ATOMIC_RELEASE);
    return static_cast<uint16_t>(first + zeros + 1);
  }
  std::vector<uint8_t> arena_;
  std::shared_ptr<const GuestMemory> mem_;
  RingLayout l_;
  VirtQueue q_;
  uint16_t avail_ = 0;
  QueueCounters c_{};
  std::string v_;
};

TEST_F(LongChainTest, DescriptorBudgetBoundsOneCallAndLosesNothing) {
  uint16_t d = 0;
  for (int i = 0; i < 6; i++) d = Chain(d, 9);  // 10 descriptors per frame
  GuestFrame f[8];
  uint32_t budget = 25;
  // 25 descriptors: the third chain starts at 20 (< 25) and completes.
  EXPECT_EQ(q_.PeekTx(f, 8, &c_, &v_, &budget), 3);
  EXPECT_EQ(budget, 0u);
  q_.ReleaseTx(3);
  budget = 0;
  EXPECT_EQ(q_.PeekTx(f, 8, &c_, &v_, &budget), 0);  // no budget: no chain started
  budget = 1000;
  EXPECT_EQ(q_.PeekTx(f, 8, &c_, &v_, &budget), 3);  // the rest, nothing lost
  EXPECT_EQ(budget, 1000u - 30);
  q_.ReleaseTx(3);
  EXPECT_EQ(c_.tx_packets, 6u);
  EXPECT_EQ(c_.tx_dropped, 0u);
  EXPECT_EQ(l_.used->idx, 6);
  EXPECT_TRUE(v_.empty());
}

// Runs of single-descriptor frames (the fast path) around chains (the full
// walk): every frame once, in ring order, and the budget counts both.
TEST_F(LongChainTest, FastRunsAndChainsInterleaveUnderTheBudget) {
  uint16_t d = 0;
  const uint16_t zeros[] = {0, 0, 0, 2, 0, 0, 4, 0};  // 0: one descriptor
  uint16_t heads[8];
  for (int i = 0; i < 8; i++) {
    heads[i] = d;
    d = Chain(d, zeros[i]);
  }
  GuestFrame f[8];
  // 3 single + a 3-descriptor chain = 6 descriptors: the budget of 5 ends
  // the call after the chain that crossed it.
  uint32_t budget = 5;
  ASSERT_EQ(q_.PeekTx(f, 8, &c_, &v_, &budget), 4);
  EXPECT_EQ(budget, 0u);
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(f[i].head, heads[i]) << i;
    EXPECT_EQ(f[i].len, 60u) << i;
  }
  // n bounds a fast run too.
  budget = 1000;
  ASSERT_EQ(q_.PeekTx(f, 1, &c_, &v_, &budget), 1);
  EXPECT_EQ(f[0].head, heads[4]);
  EXPECT_EQ(budget, 999u);
  ASSERT_EQ(q_.PeekTx(f, 8, &c_, &v_, &budget), 3);
  EXPECT_EQ(f[0].head, heads[5]);
  EXPECT_EQ(f[1].head, heads[6]);
  EXPECT_EQ(f[2].head, heads[7]);
  EXPECT_EQ(f[2].nsegs, 1u);
  EXPECT_EQ(budget, 999u - 7);
  q_.ReleaseTx(8);
  EXPECT_EQ(c_.tx_packets, 8u);
  EXPECT_EQ(c_.tx_dropped, 0u);
  EXPECT_EQ(l_.used->idx, 8);
  for (int i = 0; i < 8; i++) EXPECT_EQ(l_.used->ring[i].id, heads[i]) << i;
  EXPECT_TRUE(v_.empty());
}

TEST_F(LongChainTest, ChainOfZeroLengthDescriptorsOverTheCapIsDroppedNotWalked) {
  // kMaxChainDescs zero-length descriptors before the data: legal for
  // VIRTIO (shorter than the ring), refused here after kMaxChainDescs.
  uint16_t d = Chain(0, kMaxChainDescs);
  Chain(d, 0);  // then an ordinary frame
  GuestFrame f[4];
  uint32_t budget = 1000;
  EXPECT_EQ(q_.PeekTx(f, 4, &c_, &v_, &budget), 1);
  EXPECT_EQ(budget, 1000u - kMaxChainDescs - 1);  // the long one cost its cap, no more
  q_.ReleaseTx(1);
  EXPECT_EQ(c_.tx_dropped, 1u);  // counted, and returned to the guest
  EXPECT_EQ(l_.used->idx, 2);
  EXPECT_TRUE(v_.empty());
}

TEST_F(LongChainTest, ALoopIsStillAViolationWhenTheRingIsLongerThanTheCap) {
  const uint64_t buf = reinterpret_cast<uint64_t>(arena_.data()) + 0x8000;
  l_.desc[0] = {buf, 64, NPA_VRING_DESC_F_NEXT, 1};
  l_.desc[1] = {buf, 64, NPA_VRING_DESC_F_NEXT, 0};
  l_.avail->ring[0] = 0;
  __atomic_store_n(&l_.avail->idx, 1, __ATOMIC_RELEASE);
  GuestFrame f[1];
  EXPECT_EQ(q_.PeekTx(f, 1, &c_, &v_), 0);
  EXPECT_NE(v_.find("loop"), std::string::npos) << v_;
}

TEST_F(LongChainTest, RxFrameNeedingTooManyTinyBuffersIsDroppedAndCounted) {
  // Mergeable RX buffers of 12 bytes: a 4000-byte frame would need 335.
  const uint64_t base = reinterpret_cast<uint64_t>(arena_.data()) + 0x8000;
  for (uint16_t i = 0; i < kNum; i++) {
    l_.desc[i] = {base + i * 12u, 12, NPA_VRING_DESC_F_WRITE, 0};
    l_.avail->ring[i] = i;
  }
  __atomic_store_n(&l_.avail->idx, static_cast<uint16_t>(kNum), __ATOMIC_RELEASE);
  std::vector<uint8_t> big(4000, 0x5a), small(60, 0x5b);
  iovec s1{big.data(), big.size()}, s2{small.data(), small.size()};
  PacketRef p[2] = {{nullptr, &s1, 1, 4000}, {nullptr, &s2, 1, 60}};
  EXPECT_EQ(q_.EnqueueRx(p, 2, &c_, &v_), 2);
  EXPECT_EQ(c_.rx_dropped, 1u);  // the big one
  EXPECT_EQ(c_.rx_packets, 1u);  // the small one: 72 bytes in 6 buffers
  EXPECT_EQ(l_.used->idx, 6);
  EXPECT_TRUE(v_.empty());
}

}  // namespace
}  // namespace npa::agent
