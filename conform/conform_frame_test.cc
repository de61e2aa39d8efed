// The conformance frame: what the peer and the DUT send each other, and the
// verdicts npa-conform's traffic cases count (conform_frame.h).
#include "conform/conform_frame.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace npa::conform {
namespace {

const uint8_t kDst[6] = {0x02, 0, 0, 0, 0, 1};
const uint8_t kSrc[6] = {0x02, 0, 0, 0, 0, 2};

TEST(ConformFrame, AFilledFrameChecksIntactWithItsSequenceNumber) {
  for (size_t len : {kFrameHdr, size_t{64}, size_t{1514}}) {
    std::vector<uint8_t> f(len);
    FillFrame(f.data(), len, kDst, kSrc, 7, 0xfffffff0u);
    EXPECT_EQ(memcmp(f.data(), kDst, 6), 0);
    EXPECT_EQ(memcmp(f.data() + 6, kSrc, 6), 0);
    EXPECT_EQ(f[12], 0x88);
    EXPECT_EQ(f[13], 0xb5);
    uint32_t seq = 0;
    EXPECT_EQ(CheckFrame(f.data(), len, 7, &seq), FrameCheck::kIntact) << len;
    EXPECT_EQ(seq, 0xfffffff0u);
  }
}

TEST(ConformFrame, OtherRunsEtherTypesAndShortFramesAreNotOurs) {
  uint8_t f[64];
  FillFrame(f, sizeof f, kDst, kSrc, 7, 1);
  uint32_t seq = 0;
  EXPECT_EQ(CheckFrame(f, sizeof f, 8, &seq), FrameCheck::kNotOurs) << "a stale run";
  EXPECT_EQ(CheckFrame(f, kFrameHdr - 1, 7, &seq), FrameCheck::kNotOurs) << "too short";
  f[13] = 0x00;  // 0x8800
  EXPECT_EQ(CheckFrame(f, sizeof f, 7, &seq), FrameCheck::kNotOurs);
  f[13] = 0xb5;
  f[15] = 'X';  // "NXAC"
  EXPECT_EQ(CheckFrame(f, sizeof f, 7, &seq), FrameCheck::kNotOurs);
}

TEST(ConformFrame, APayloadOfAnotherFrameIsCorrupt) {
  uint8_t a[64], b[64];
  FillFrame(a, sizeof a, kDst, kSrc, 7, 1);
  FillFrame(b, sizeof b, kDst, kSrc, 7, 2);
  // a's header with b's payload: what a ring that mixed up buffers returns.
  memcpy(a + kFrameHdr, b + kFrameHdr, sizeof a - kFrameHdr);
  uint32_t seq = 0;
  EXPECT_EQ(CheckFrame(a, sizeof a, 7, &seq), FrameCheck::kCorrupt);
  FillFrame(a, sizeof a, kDst, kSrc, 7, 1);
  a[63] ^= 1;  // the last byte only
  EXPECT_EQ(CheckFrame(a, sizeof a, 7, &seq), FrameCheck::kCorrupt);
}

// Two segments in slot-sized memory, as a plug-in hands a chained frame up.
TEST(ConformFrame, LinearizeJoinsSegmentsAndStopsAtTheCap) {
  std::vector<uint8_t> slots(2 * NPA_BUF_SLOT_SIZE);
  auto* s0 = reinterpret_cast<npa_buf*>(slots.data());
  auto* s1 = reinterpret_cast<npa_buf*>(slots.data() + NPA_BUF_SLOT_SIZE);
  uint8_t frame[100];
  FillFrame(frame, sizeof frame, kDst, kSrc, 3, 9);
  s0->data_off = s1->data_off = NPA_BUF_DATA_OFF;
  s0->data_len = 60;
  s1->data_len = 40;
  s0->next = s1;
  s1->next = nullptr;
  memcpy(npa_buf_data(s0), frame, 60);
  memcpy(npa_buf_data(s1), frame + 60, 40);
  uint8_t out[128];
  ASSERT_EQ(LinearizeFrame(s0, out, sizeof out), 100u);
  uint32_t seq = 0;
  EXPECT_EQ(CheckFrame(out, 100, 3, &seq), FrameCheck::kIntact);
  EXPECT_EQ(seq, 9u);
  EXPECT_EQ(LinearizeFrame(s0, out, 70), 70u) << "the cap bounds the copy";
  s1->next = s1;  // a cycle: bounded at 64 segments, 60 + 63 * 40 bytes
  std::vector<uint8_t> big(4096);
  EXPECT_EQ(LinearizeFrame(s0, big.data(), big.size()), 60u + 63u * 40u);
}

}  // namespace
}  // namespace npa::conform
