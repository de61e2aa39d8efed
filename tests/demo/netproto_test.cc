#include "tests/demo/netproto.h"

#include <arpa/inet.h>

#include <vector>

#include "gtest/gtest.h"

namespace npa::demo {
namespace {

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3 example: 0001 f203 f4f5 f6f7 sums to ddf2 (folded).
  const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(CsumFold(CsumPartial(d, sizeof d, 0)), static_cast<uint16_t>(~0xddf2 & 0xffff));
}

TEST(Checksum, OddLengthPadsWithZero) {
  const uint8_t a[] = {0x12, 0x34, 0x56};
  const uint8_t b[] = {0x12, 0x34, 0x56, 0x00};
  EXPECT_EQ(CsumFold(CsumPartial(a, 3, 0)), CsumFold(CsumPartial(b, 4, 0)));
}

TEST(Udp, BuiltDatagramVerifies) {
  uint8_t f[1600];
  Mac s{2, 0, 0, 0, 0, 1}, d{2, 0, 0, 0, 0, 2};
  uint32_t sip, dip;
  inet_pton(AF_INET, "192.0.2.2", &sip);
  inet_pton(AF_INET, "192.0.2.1", &dip);
  size_t n = BuildUdpStream(f, s, d, sip, dip, 9000, 9000, 42, 100);
  ASSERT_EQ(n, kEthHdr + kIpHdr + kUdpHdr + 100);
  // A correct IPv4 header sums to 0xffff; a correct UDP datagram with its
  // pseudo-header too (RFC 768).
  EXPECT_EQ(CsumFold(CsumPartial(f + kEthHdr, kIpHdr, 0)), 0);
  uint32_t sum = CsumPartial(f + kEthHdr + 12, 8, 0) + 17 + kUdpHdr + 100;
  EXPECT_EQ(CsumFold(CsumPartial(f + kEthHdr + kIpHdr, kUdpHdr + 100, sum)), 0);
  StreamStats st;
  EXPECT_TRUE(st.Account({f + kEthHdr + kIpHdr + kUdpHdr, 100}));
  EXPECT_EQ(st.received, 1u);
  EXPECT_EQ(st.corrupt, 0u);
}

std::vector<uint8_t> Datagram(uint64_t seq, size_t len) {
  std::vector<uint8_t> p(len);
  StreamHeader h{kStreamMagic, 0, seq};
  memcpy(p.data(), &h, sizeof h);
  for (size_t i = sizeof h; i < len; i++) p[i] = PatternByte(seq, i);
  return p;
}

TEST(Stream, CountsLossReorderDuplicatesCorruption) {
  StreamStats st;
  for (uint64_t s : {0, 1, 3, 2, 3}) {
    auto d = Datagram(s, 64);
    EXPECT_TRUE(st.Account(d));
  }
  auto bad = Datagram(4, 64);
  bad[40] ^= 1;
  EXPECT_TRUE(st.Account(bad));
  EXPECT_FALSE(st.Account(std::vector<uint8_t>(8, 0)));  // too short: not ours
  EXPECT_EQ(st.received, 4u);
  EXPECT_EQ(st.duplicates, 1u);
  EXPECT_EQ(st.out_of_order, 1u);
  EXPECT_EQ(st.corrupt, 1u);
  EXPECT_EQ(st.Lost(6), 2u);
}

TEST(Mac, ParseAndPrint) {
  auto m = ParseMac("02:00:5e:10:00:ff");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(MacToString(*m), "02:00:5e:10:00:ff");
  EXPECT_FALSE(ParseMac("02:00:5e:10:00").has_value());
  EXPECT_FALSE(ParseMac("02:00:5e:10:00:100").has_value());
  EXPECT_FALSE(ParseMac("02:00:5e:10:00:ff:").has_value());
}

}  // namespace
}  // namespace npa::demo
