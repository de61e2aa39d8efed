#include "hypervisor/daemon/dataplane_frames.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace npa::agent {
namespace {

// A frame of `len` bytes 0, 1, 2, ... split into segments of the given sizes.
struct SplitFrame {
  SplitFrame(std::vector<size_t> sizes) {
    size_t len = std::accumulate(sizes.begin(), sizes.end(), size_t{0});
    bytes.resize(len);
    for (size_t i = 0; i < len; i++) bytes[i] = static_cast<uint8_t>(i);
    f.len = static_cast<uint32_t>(len);
    f.nsegs = static_cast<uint16_t>(sizes.size());
    size_t off = 0;
    for (size_t s = 0; s < sizes.size(); s++) {
      f.segs[s] = {bytes.data() + off, sizes[s]};
      off += sizes[s];
    }
  }
  std::vector<uint8_t> bytes;
  GuestFrame f{};
};

std::vector<uint8_t> Join(const iovec* segs, uint16_t n) {
  std::vector<uint8_t> out;
  for (uint16_t i = 0; i < n; i++) {
    auto* b = static_cast<const uint8_t*>(segs[i].iov_base);
    out.insert(out.end(), b, b + segs[i].iov_len);
  }
  return out;
}

TEST(DataplaneFramesTest, GatherEthAcrossSegmentsAndZeroPadsARunt) {
  SplitFrame sf({3, 5, 1, 60});
  uint8_t eth[14];
  GatherEth(sf.f, eth);
  for (int i = 0; i < 14; i++) EXPECT_EQ(eth[i], i);
  SplitFrame runt({4, 2});
  memset(eth, 0xaa, sizeof eth);
  GatherEth(runt.f, eth);
  for (int i = 0; i < 6; i++) EXPECT_EQ(eth[i], i);
  for (int i = 6; i < 14; i++) EXPECT_EQ(eth[i], 0);
}

TEST(DataplaneFramesTest, CheckedSegsPutsTheCopyFirstAndSkipsTheGuestsHeader) {
  for (const std::vector<size_t>& sizes :
       {std::vector<size_t>{60}, {14, 46}, {10, 4, 46}, {5, 5, 5, 45}}) {
    SplitFrame sf(sizes);
    uint8_t eth[14];
    for (int i = 0; i < 14; i++) eth[i] = static_cast<uint8_t>(0xf0 + i);  // the checked copy
    iovec out[kMaxFrameSegs + 1];
    const uint16_t n = CheckedSegs(sf.f, eth, out);
    EXPECT_EQ(out[0].iov_base, eth);
    std::vector<uint8_t> got = Join(out, n);
    ASSERT_EQ(got.size(), sf.bytes.size());
    for (size_t i = 0; i < 14; i++) EXPECT_EQ(got[i], 0xf0 + i);
    for (size_t i = 14; i < got.size(); i++) EXPECT_EQ(got[i], sf.bytes[i]) << i;
    for (uint16_t s = 1; s < n; s++) EXPECT_GT(out[s].iov_len, 0u);  // no empty segments
  }
}

TEST(DataplaneFramesTest, FlowQueueKeepsAFlowOnOneQueueAndNonIpOnQueueZero) {
  std::vector<uint8_t> ip(60, 0);
  ip[12] = 0x08;
  ip[13] = 0x00;
  ip[26] = 10, ip[29] = 1, ip[30] = 10, ip[33] = 2;
  const uint16_t q = FlowQueue(ip.data(), 60, 4);
  EXPECT_LT(q, 4);
  // The reverse direction hashes the same pair: the same queue.
  std::swap(ip[29], ip[33]);
  EXPECT_EQ(FlowQueue(ip.data(), 60, 4), q);
  EXPECT_EQ(FlowQueue(ip.data(), 60, 1), 0);
  EXPECT_EQ(FlowQueue(ip.data(), 33, 4), 0);  // too short for the addresses
  ip[13] = 0x06;                              // ARP
  EXPECT_EQ(FlowQueue(ip.data(), 60, 4), 0);
}

TEST(DataplaneFramesTest, MacKeyIsTheSixBytes) {
  const uint8_t a[6] = {0x02, 0, 0, 0, 0, 1}, b[6] = {0x02, 0, 0, 0, 0, 2};
  EXPECT_NE(MacKey(a), MacKey(b));
  EXPECT_EQ(MacKey(a), MacKey(a));
  const uint8_t z[6] = {};
  EXPECT_EQ(MacKey(z), 0u);
}

TEST(DataplaneFramesTest, CopyFrameCutsAtRoom) {
  SplitFrame sf({20, 20, 20});
  std::vector<uint8_t> dst(50, 0xee);
  CopyFrame(sf.f, dst.data(), 45);
  for (size_t i = 0; i < 45; i++) EXPECT_EQ(dst[i], i);
  for (size_t i = 45; i < 50; i++) EXPECT_EQ(dst[i], 0xee);
  SplitFrame one({30});
  CopyFrame(one.f, dst.data(), 50);
  for (size_t i = 0; i < 30; i++) EXPECT_EQ(dst[i], i);
}

}  // namespace
}  // namespace npa::agent
