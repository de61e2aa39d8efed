#include "shell/offload.h"

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "shell/buf_pool.h"
#include "shell/region.h"

namespace npa::shell {
namespace {

// Straightforward RFC 1071 reference: big-endian 16-bit words.
uint16_t RefCsum(const std::vector<uint8_t>& d, size_t from) {
  uint32_t s = 0;
  for (size_t i = from; i < d.size(); i += 2) {
    uint16_t w = static_cast<uint16_t>(d[i] << 8);
    if (i + 1 < d.size()) w |= d[i + 1];
    s += w;
  }
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

class OffloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Region::Create(128 * NPA_BUF_SLOT_SIZE, false);
    ASSERT_TRUE(r.ok());
    region_ = std::move(*r);
    ASSERT_TRUE(pool_.Init(region_.base(), 128, 0, 128, region_.iova(), region_.iova() + region_.size()).ok());
  }
  // An Ethernet+IPv4+UDP frame of `len` bytes, UDP checksum field holding
  // the pseudo-header sum (CHECKSUM_PARTIAL convention), spread over segments
  // of `seg` bytes.
  npa_buf* UdpFrame(uint32_t len, uint32_t seg, std::vector<uint8_t>* flat) {
    flat->assign(len, 0);
    auto& f = *flat;
    for (uint32_t i = 42; i < len; i++) f[i] = static_cast<uint8_t>(i * 31 + 5);
    f[12] = 0x08;
    f[14] = 0x45;
    f[23] = 17;
    uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
    memcpy(&f[26], src, 4);
    memcpy(&f[30], dst, 4);
    uint16_t ulen = static_cast<uint16_t>(len - 34);
    f[38] = static_cast<uint8_t>(ulen >> 8);
    f[39] = static_cast<uint8_t>(ulen);
    uint32_t ph = (10 << 8) + 1 + (10 << 8) + 2 + 17 + ulen;
    while (ph >> 16) ph = (ph & 0xffff) + (ph >> 16);
    f[40] = static_cast<uint8_t>(ph >> 8);
    f[41] = static_cast<uint8_t>(ph);
    npa_buf* head = nullptr;
    npa_buf* tail = nullptr;
    for (uint32_t off = 0; off < len; off += seg) {
      npa_buf* b = nullptr;
      EXPECT_EQ(pool_.Alloc(&b, 1), 1u);
      uint32_t k = std::min(seg, len - off);
      memcpy(npa_buf_data(b), &f[off], k);
      b->data_len = static_cast<uint16_t>(k);
      if (!head) head = b; else { tail->next = b; head->nb_segs++; }
      tail = b;
    }
    head->pkt_len = len;
    head->csum_start = 34;
    head->csum_offset = 6;
    head->ol_flags = NPA_BUF_OL_TX_CSUM;
    return head;
  }
  uint16_t FieldOf(npa_buf* b) {  // bytes 40..41 of the frame, wherever they are
    std::vector<uint8_t> f;
    for (npa_buf* s = b; s; s = s->next) {
      auto* d = static_cast<uint8_t*>(npa_buf_data(s));
      f.insert(f.end(), d, d + s->data_len);
    }
    return static_cast<uint16_t>(f[40] << 8 | f[41]);
  }
  Region region_;
  BufPool pool_;
};

TEST_F(OffloadTest, SoftwareChecksumMatchesReferenceAcrossOddSegments) {
  for (uint32_t seg : {2000u, 101u, 64u, 7u}) {
    std::vector<uint8_t> f;
    npa_buf* b = UdpFrame(301, seg, &f);
    ASSERT_TRUE(SoftwareChecksum(b)) << seg;
    // Reference: sum over the span with the field holding the pseudo sum.
    EXPECT_EQ(FieldOf(b), RefCsum(f, 34)) << "segment size " << seg;
    pool_.Free(&b, 1);
  }
}

TEST_F(OffloadTest, EncodeUsesDeviceCsumWhenNegotiated) {
  std::vector<uint8_t> f;
  npa_buf* b = UdpFrame(100, 2000, &f);
  virtio_net_hdr_mrg_rxbuf h;
  ASSERT_TRUE(EncodeTxHdr(b, 1ull << VIRTIO_NET_F_CSUM, &h));
  EXPECT_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  EXPECT_EQ(h.hdr.csum_start, 34);
  EXPECT_EQ(h.hdr.csum_offset, 6);
  EXPECT_EQ(h.num_buffers, 0);
  EXPECT_EQ(FieldOf(b), static_cast<uint16_t>(f[40] << 8 | f[41])) << "left for the device";
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, EncodeFallsBackToSoftwareWithoutDeviceCsum) {
  std::vector<uint8_t> f;
  npa_buf* b = UdpFrame(100, 2000, &f);
  virtio_net_hdr_mrg_rxbuf h;
  ASSERT_TRUE(EncodeTxHdr(b, 0, &h));
  EXPECT_EQ(h.hdr.flags, 0);
  EXPECT_EQ(FieldOf(b), RefCsum(f, 34));
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, EncodeRejectsImpossibleRequests) {
  std::vector<uint8_t> f;
  npa_buf* b = UdpFrame(100, 2000, &f);
  virtio_net_hdr_mrg_rxbuf h;
  b->csum_offset = 200;  // outside the frame
  EXPECT_FALSE(EncodeTxHdr(b, 1ull << VIRTIO_NET_F_CSUM, &h));
  EXPECT_FALSE(EncodeTxHdr(b, 0, &h));
  b->csum_offset = 6;
  b->ol_flags = NPA_BUF_OL_TX_TSO4;
  b->tso_segsz = 1400;
  EXPECT_FALSE(EncodeTxHdr(b, 1ull << VIRTIO_NET_F_CSUM, &h)) << "no HOST_TSO4";
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, EncodeTso4) {
  std::vector<uint8_t> f;
  npa_buf* b = UdpFrame(1000, 2000, &f);
  static_cast<uint8_t*>(npa_buf_data(b))[34 + 12] = 8 << 4;  // TCP header: 32 bytes
  b->ol_flags = NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_CSUM;
  b->csum_offset = 16;
  b->tso_segsz = 500;
  virtio_net_hdr_mrg_rxbuf h;
  ASSERT_TRUE(EncodeTxHdr(b, (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4), &h));
  EXPECT_EQ(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
  EXPECT_EQ(h.hdr.gso_size, 500);
  EXPECT_EQ(h.hdr.hdr_len, 34 + 32);
  EXPECT_EQ(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, DecodeRxHeader) {
  npa_buf* b = nullptr;
  ASSERT_EQ(pool_.Alloc(&b, 1), 1u);
  virtio_net_hdr_mrg_rxbuf h{};
  h.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  ASSERT_TRUE(DecodeRxHdr(h, 1514, b));
  EXPECT_EQ(b->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD);
  h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.hdr.csum_start = 34;
  h.hdr.csum_offset = 16;
  h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.hdr.gso_size = 1448;
  ASSERT_TRUE(DecodeRxHdr(h, 1514, b));
  EXPECT_EQ(b->ol_flags, NPA_BUF_OL_RX_CSUM_PARTIAL | NPA_BUF_OL_RX_GSO);
  EXPECT_EQ(b->csum_start, 34);
  EXPECT_EQ(b->csum_offset, 16);
  EXPECT_EQ(b->tso_segsz, 1448);
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, DecodeRxHeaderBoundsWhatTheBackEndWrote) {
  npa_buf* b = nullptr;
  ASSERT_EQ(pool_.Alloc(&b, 1), 1u);
  virtio_net_hdr_mrg_rxbuf h{};
  h.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.hdr.csum_start = 34;
  h.hdr.csum_offset = 16;
  EXPECT_TRUE(DecodeRxHdr(h, 52, b)) << "field ends exactly at the frame end";
  EXPECT_FALSE(DecodeRxHdr(h, 51, b)) << "field past the frame end";
  h.hdr.csum_start = 60000;
  h.hdr.csum_offset = 60000;  // 32-bit sum: no 16-bit wrap-around
  EXPECT_FALSE(DecodeRxHdr(h, 1514, b));
  h.hdr.csum_start = 4;
  h.hdr.csum_offset = 6;
  EXPECT_FALSE(DecodeRxHdr(h, 1514, b)) << "inside the Ethernet header";
  h = {};
  h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.hdr.gso_size = 0;
  EXPECT_FALSE(DecodeRxHdr(h, 1514, b)) << "GSO without a segment size";
  h.hdr.gso_type = 0x7f;
  h.hdr.gso_size = 1000;
  EXPECT_FALSE(DecodeRxHdr(h, 1514, b)) << "unknown GSO type";
  h.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN;
  EXPECT_TRUE(DecodeRxHdr(h, 1514, b));
  EXPECT_EQ(b->ol_flags, NPA_BUF_OL_RX_GSO);
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, StripVlanDropsAPartialChecksumThatStartsInTheTag) {
  npa_buf* b = nullptr;
  ASSERT_EQ(pool_.Alloc(&b, 1), 1u);
  auto* d = static_cast<uint8_t*>(npa_buf_data(b));
  memset(d, 0, 64);
  d[12] = 0x81;
  b->data_len = 64;
  b->pkt_len = 64;
  b->ol_flags = NPA_BUF_OL_RX_CSUM_PARTIAL;
  b->csum_start = 15;
  ASSERT_TRUE(StripVlan(b));
  EXPECT_EQ(b->ol_flags & NPA_BUF_OL_RX_CSUM_PARTIAL, 0u);
  pool_.Free(&b, 1);
}

TEST_F(OffloadTest, CheckRxFrameBoundsAPlugInsMetadata) {
  npa_buf* b[2];
  ASSERT_EQ(pool_.Alloc(b, 2), 2u);
  auto held = [this](const npa_buf* s) { return pool_.Held(s); };
  auto fault = [&] { return FindRxFrameFault(b[0], 8, held); };
  b[0]->data_len = 100;
  b[0]->pkt_len = 100;
  b[0]->ol_flags = NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_TX_TSO4;
  EXPECT_EQ(fault(), RxFrameFault::kNone);
  EXPECT_EQ(b[0]->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_TX_TSO4) << "Find changes nothing";
  EXPECT_TRUE(CheckRxFrame(b[0], 8, held));
  EXPECT_EQ(b[0]->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD) << "TX requests cleared";
  b[0]->pkt_len = 101;
  EXPECT_EQ(fault(), RxFrameFault::kPktLen);
  EXPECT_FALSE(CheckRxFrame(b[0], 8, held));
  b[0]->pkt_len = 100;
  b[0]->data_off = 2100;
  EXPECT_EQ(fault(), RxFrameFault::kOutsideSlot) << "data past the slot";
  b[0]->data_off = 8;
  EXPECT_EQ(fault(), RxFrameFault::kOutsideSlot) << "data over the header";
  EXPECT_FALSE(CheckRxFrame(b[0], 8, held));
  b[0]->data_off = NPA_BUF_DATA_OFF;
  b[0]->ol_flags = NPA_BUF_OL_RX_CSUM_PARTIAL;
  b[0]->csum_start = 90;
  b[0]->csum_offset = 10;
  EXPECT_EQ(fault(), RxFrameFault::kCsumSpan) << "checksum field past the frame";
  b[0]->csum_start = 10;
  b[0]->csum_offset = 0;
  EXPECT_EQ(fault(), RxFrameFault::kCsumSpan) << "checksum span inside the Ethernet header";
  b[0]->ol_flags = NPA_BUF_OL_RX_GSO;
  b[0]->tso_segsz = 0;
  EXPECT_EQ(fault(), RxFrameFault::kGsoSize);
  EXPECT_FALSE(CheckRxFrame(b[0], 8, held));
  b[0]->ol_flags = 0;
  // Two segments: the second must be the shell's and counted in nb_segs.
  b[0]->next = b[1];
  b[1]->data_len = 50;
  b[0]->pkt_len = 150;
  EXPECT_EQ(fault(), RxFrameFault::kNbSegs) << "nb_segs says 1";
  b[0]->nb_segs = 2;
  EXPECT_EQ(fault(), RxFrameFault::kNone);
  EXPECT_TRUE(CheckRxFrame(b[0], 8, held));
  EXPECT_EQ(FindRxFrameFault(b[0], 1, held), RxFrameFault::kTooManySegments);
  b[1]->next = b[0];  // a loop ends at the segment limit
  EXPECT_EQ(fault(), RxFrameFault::kTooManySegments);
  b[1]->next = nullptr;
  npa_buf stray{};
  stray.data_off = NPA_BUF_DATA_OFF;
  b[0]->next = &stray;
  stray.data_len = 50;
  EXPECT_EQ(fault(), RxFrameFault::kForeignSegment) << "a segment that is not the shell's";
  EXPECT_FALSE(CheckRxFrame(b[0], 8, held));
  EXPECT_STREQ(RxFrameFaultName(RxFrameFault::kForeignSegment), "a segment that is not a held buffer");
  b[0]->next = b[1];
  pool_.Free(b, 1);
  EXPECT_EQ(pool_.available(), 128u);
}

}  // namespace
}  // namespace npa::shell
