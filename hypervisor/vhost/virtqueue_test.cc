#include "hypervisor/vhost/virtqueue.h"

#include <cstring>

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

}  // namespace
}  // namespace npa::agent
