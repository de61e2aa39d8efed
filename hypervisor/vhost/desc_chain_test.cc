#include "hypervisor/vhost/desc_chain.h"

#include <cstring>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

class DescChainTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kGpa = 0x10000;
  void SetUp() override {
    mem_ = *GuestMemory::FromRegions({{kGpa, kGpa, sizeof(buf_), buf_}});
    std::memset(desc_, 0, sizeof(desc_));
  }
  bool Walk(uint32_t head, ChainDir dir, uint16_t cap = 8) {
    return WalkChain(desc_, 16, head, *mem_, &hint_, dir, bufs_, cap, &walk_, &err_);
  }
  uint8_t buf_[4096];
  std::shared_ptr<const GuestMemory> mem_;
  npa_vring_desc desc_[16];
  ChainBuf bufs_[8];
  ChainWalk walk_;
  ChainError err_;
  uint32_t hint_ = 0;
};

TEST_F(DescChainTest, WalksReadableChain) {
  desc_[3] = {kGpa, 100, NPA_VRING_DESC_F_NEXT, 7};
  desc_[7] = {kGpa + 200, 50, 0, 0};
  ASSERT_TRUE(Walk(3, ChainDir::kReadable)) << err_.Describe();
  EXPECT_EQ(walk_.nbufs, 2);
  EXPECT_EQ(walk_.total_len, 150u);
  EXPECT_EQ(bufs_[1].host, buf_ + 200);
}

TEST_F(DescChainTest, RejectsBadChains) {
  EXPECT_FALSE(Walk(16, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kHeadOutOfRange);
  desc_[0] = {kGpa, 10, NPA_VRING_DESC_F_NEXT, 99};
  EXPECT_FALSE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kNextOutOfRange);
  desc_[0] = {kGpa, 10, NPA_VRING_DESC_F_NEXT, 1};
  desc_[1] = {kGpa, 10, NPA_VRING_DESC_F_NEXT, 0};  // 0 -> 1 -> 0 ...
  EXPECT_FALSE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kLoop);
  desc_[0] = {kGpa + 4000, 200, 0, 0};
  EXPECT_FALSE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kOutsideMemory);
  EXPECT_EQ(err_.Describe(), "descriptor 0 addr 0x10fa0 len 200 is outside guest memory");
  desc_[0] = {kGpa, 10, NPA_VRING_DESC_F_WRITE, 0};
  EXPECT_FALSE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kWrongDirection);
  desc_[0] = {kGpa, 10, 0, 0};
  EXPECT_FALSE(Walk(0, ChainDir::kWritable));
  EXPECT_EQ(err_.kind, ChainError::kWrongDirection);
  desc_[0] = {kGpa, 16, NPA_VRING_DESC_F_INDIRECT, 0};
  EXPECT_FALSE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(err_.kind, ChainError::kIndirect);
}

TEST_F(DescChainTest, LongestLegalChainAndTruncation) {
  for (int i = 0; i < 16; ++i)
    desc_[i] = {kGpa + i * 10u, 10, uint16_t(i < 15 ? NPA_VRING_DESC_F_NEXT : 0), uint16_t(i + 1)};
  ASSERT_TRUE(Walk(0, ChainDir::kReadable, 8)) << err_.Describe();
  EXPECT_EQ(walk_.ndesc, 16);
  EXPECT_EQ(walk_.nbufs, 8);
  EXPECT_TRUE(walk_.truncated);
  EXPECT_EQ(walk_.total_len, 160u);
}

TEST_F(DescChainTest, ZeroLengthDescriptorsAreSkippedNotTranslated) {
  desc_[0] = {0xdead0000, 0, NPA_VRING_DESC_F_NEXT, 1};
  desc_[1] = {kGpa, 20, 0, 0};
  ASSERT_TRUE(Walk(0, ChainDir::kReadable));
  EXPECT_EQ(walk_.nbufs, 1);
}

TEST(SplitNetHdrTest, HeaderSharedSeparateAndSplit) {
  uint8_t a[64], b[64];
  for (int i = 0; i < 64; ++i) a[i] = uint8_t(i), b[i] = uint8_t(100 + i);
  GuestFrame f;
  ChainBuf shared[1] = {{a, 40}};
  ASSERT_TRUE(SplitNetHdr(shared, 1, &f));
  EXPECT_EQ(f.len, 28u);
  EXPECT_EQ(f.nsegs, 1);
  EXPECT_EQ(f.segs[0].iov_base, a + 12);
  ChainBuf separate[2] = {{a, 12}, {b, 30}};
  ASSERT_TRUE(SplitNetHdr(separate, 2, &f));
  EXPECT_EQ(f.nsegs, 1);
  EXPECT_EQ(f.segs[0].iov_base, b);
  ChainBuf split[3] = {{a, 5}, {b, 10}, {a + 20, 8}};
  ASSERT_TRUE(SplitNetHdr(split, 3, &f));
  const uint8_t* h = reinterpret_cast<const uint8_t*>(&f.hdr);
  EXPECT_EQ(h[4], 4);
  EXPECT_EQ(h[5], 100);
  EXPECT_EQ(h[11], 106);
  EXPECT_EQ(f.len, 3u + 8u);
  EXPECT_EQ(f.segs[0].iov_base, b + 7);
  ChainBuf tiny[1] = {{a, 11}};
  EXPECT_FALSE(SplitNetHdr(tiny, 1, &f));
}

}  // namespace
}  // namespace npa::agent
