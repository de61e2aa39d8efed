// The Toeplitz hash against the verification vectors published with
// Microsoft's RSS specification (default key; IPv4 and IPv6, with and
// without the TCP ports), against a bit-by-bit reference on random keys,
// and the tuple extraction on the frames a guest sends.
#include "common/rss.h"

#include <arpa/inet.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa {
namespace {

struct Vector {
  const char *src, *dst;
  uint16_t sport, dport;
  uint32_t ip_hash, tcp_hash;
};

// Source address, destination address, source port, destination port.
const Vector kIpv4[] = {
    {"66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178},
    {"199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea},
    {"24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
    {"38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f},
    {"153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2},
};
const Vector kIpv6[] = {
    {"3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d},
    {"3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf},
    {"3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x4b61e985,
     0x02d1feef},
};

std::vector<uint8_t> Tuple(int af, const Vector& v, bool ports) {
  const size_t alen = af == AF_INET ? 4 : 16;
  std::vector<uint8_t> t(2 * alen);
  EXPECT_EQ(inet_pton(af, v.src, t.data()), 1);
  EXPECT_EQ(inet_pton(af, v.dst, t.data() + alen), 1);
  if (ports) {
    for (uint16_t p : {v.sport, v.dport}) {
      t.push_back(static_cast<uint8_t>(p >> 8));
      t.push_back(static_cast<uint8_t>(p));
    }
  }
  return t;
}

// A TCP or UDP frame (proto 6/17), optionally VLAN-tagged, from a vector.
std::vector<uint8_t> Frame(int af, const Vector& v, uint8_t proto, bool vlan = false) {
  std::vector<uint8_t> f(12, 0x02);
  if (vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x05});
  const std::vector<uint8_t> addrs = Tuple(af, v, false);
  if (af == AF_INET) {
    f.insert(f.end(), {0x08, 0x00, 0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, proto, 0, 0});
  } else {
    f.insert(f.end(), {0x86, 0xdd, 0x60, 0, 0, 0, 0, 40, proto, 64});
  }
  f.insert(f.end(), addrs.begin(), addrs.end());
  for (uint16_t p : {v.sport, v.dport}) {
    f.push_back(static_cast<uint8_t>(p >> 8));
    f.push_back(static_cast<uint8_t>(p));
  }
  f.resize(f.size() + 16, 0);  // the rest of a TCP header
  return f;
}

// The definition, one bit at a time: for every set input bit k, XOR the
// 32 key bits starting at bit k.
uint32_t Reference(const std::vector<uint8_t>& key, const std::vector<uint8_t>& in) {
  uint32_t h = 0;
  for (size_t k = 0; k < in.size() * 8; ++k) {
    if (!(in[k / 8] & (0x80 >> (k % 8)))) continue;
    uint32_t w = 0;
    for (size_t j = 0; j < 32; ++j) {
      const size_t b = k + j;
      w = (w << 1) | ((key[b / 8] >> (7 - b % 8)) & 1);
    }
    h ^= w;
  }
  return h;
}

TEST(RssHashTest, MicrosoftVerificationVectorsIpv4) {
  RssHasher h;
  for (const Vector& v : kIpv4) {
    EXPECT_EQ(h.Hash(Tuple(AF_INET, v, false)), v.ip_hash) << v.src;
    EXPECT_EQ(h.Hash(Tuple(AF_INET, v, true)), v.tcp_hash) << v.src;
  }
}

TEST(RssHashTest, MicrosoftVerificationVectorsIpv6) {
  RssHasher h;
  for (const Vector& v : kIpv6) {
    EXPECT_EQ(h.Hash(Tuple(AF_INET6, v, false)), v.ip_hash) << v.src;
    EXPECT_EQ(h.Hash(Tuple(AF_INET6, v, true)), v.tcp_hash) << v.src;
  }
}

TEST(RssHashTest, MatchesTheBitByBitDefinitionOnRandomKeys) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<uint8_t> key(kRssKeyLen), in(rng() % (kRssMaxInput + 1));
    for (auto& b : key) b = static_cast<uint8_t>(rng());
    for (auto& b : in) b = static_cast<uint8_t>(rng());
    absl::StatusOr<RssHasher> h = RssHasher::Create(key);
    ASSERT_TRUE(h.ok()) << h.status();
    ASSERT_EQ(h->Hash(in), Reference(key, in)) << "round " << round;
  }
}

TEST(RssHashTest, KeyOfTheWrongSizeIsRefused) {
  std::vector<uint8_t> key(39);
  absl::StatusOr<RssHasher> h = RssHasher::Create(key);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("must be 40"), std::string::npos) << h.status();
}

TEST(RssTupleTest, FramesHashLikeTheirVectors) {
  RssHasher h;
  RssTuple t;
  for (const Vector& v : kIpv4) {
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET, v, 6), kRssAllTypes, &t));
    EXPECT_EQ(t.report, RssReport::kTcpv4);
    EXPECT_EQ(h.Hash(t.bytes()), v.tcp_hash);
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET, v, 6, /*vlan=*/true), kRssAllTypes, &t));
    EXPECT_EQ(h.Hash(t.bytes()), v.tcp_hash) << "a VLAN tag does not change the hash";
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET, v, 17), kRssAllTypes, &t));
    EXPECT_EQ(t.report, RssReport::kUdpv4);
    EXPECT_EQ(h.Hash(t.bytes()), v.tcp_hash) << "UDP hashes the same four fields";
    // TCP not enabled: the addresses alone.
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET, v, 6), kRssIpv4 | kRssUdpv4, &t));
    EXPECT_EQ(t.report, RssReport::kIpv4);
    EXPECT_EQ(h.Hash(t.bytes()), v.ip_hash);
  }
  for (const Vector& v : kIpv6) {
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET6, v, 6), kRssAllTypes, &t));
    EXPECT_EQ(t.report, RssReport::kTcpv6);
    EXPECT_EQ(h.Hash(t.bytes()), v.tcp_hash);
    ASSERT_TRUE(ExtractRssTuple(Frame(AF_INET6, v, 58), kRssAllTypes, &t));  // ICMPv6
    EXPECT_EQ(t.report, RssReport::kIpv6);
    EXPECT_EQ(h.Hash(t.bytes()), v.ip_hash);
  }
}

TEST(RssTupleTest, FragmentsHashOverTheAddressesOnly) {
  RssHasher h;
  RssTuple t;
  for (uint16_t frag : {0x2000 /* MF */, 0x0010 /* offset 128 */}) {
    std::vector<uint8_t> f = Frame(AF_INET, kIpv4[0], 17);
    f[14 + 6] = static_cast<uint8_t>(frag >> 8);
    f[14 + 7] = static_cast<uint8_t>(frag);
    ASSERT_TRUE(ExtractRssTuple(f, kRssAllTypes, &t));
    EXPECT_EQ(t.report, RssReport::kIpv4);
    EXPECT_EQ(h.Hash(t.bytes()), kIpv4[0].ip_hash);
  }
  // Don't-fragment is not a fragment.
  std::vector<uint8_t> f = Frame(AF_INET, kIpv4[0], 17);
  f[14 + 6] = 0x40;
  ASSERT_TRUE(ExtractRssTuple(f, kRssAllTypes, &t));
  EXPECT_EQ(t.report, RssReport::kUdpv4);
}

TEST(RssTupleTest, NothingToHashIsReportedAndEveryLengthIsChecked) {
  RssTuple t;
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_FALSE(ExtractRssTuple(arp, kRssAllTypes, &t));
  EXPECT_EQ(t.report, RssReport::kNone);
  // No IPv4 type enabled.
  EXPECT_FALSE(ExtractRssTuple(Frame(AF_INET, kIpv4[0], 6), kRssIpv6 | kRssTcpv6, &t));
  // Only TCPv4 enabled and the frame is UDP: nothing applies.
  EXPECT_FALSE(ExtractRssTuple(Frame(AF_INET, kIpv4[0], 17), kRssTcpv4, &t));
  EXPECT_EQ(t.len, 0);
  // Every truncation of a TCP frame: never reads past the end (ASan
  // checks), never reports TCP without the whole TCP header.
  const std::vector<uint8_t> full = Frame(AF_INET, kIpv4[0], 6);
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(n));
    const bool ok = ExtractRssTuple(cut, kRssAllTypes, &t);
    EXPECT_EQ(ok, n >= 34) << n;
    if (ok) {
      EXPECT_EQ(t.report, n >= 54 ? RssReport::kTcpv4 : RssReport::kIpv4) << n;
    }
  }
  // A bad IHL.
  std::vector<uint8_t> bad = full;
  bad[14] = 0x44;
  EXPECT_FALSE(ExtractRssTuple(bad, kRssAllTypes, &t));
}

TEST(RssTableTest, DefaultSpreadsRoundRobinAndCreateChecks) {
  RssTable d(4);
  for (uint32_t h = 0; h < 256; ++h) EXPECT_EQ(d.Queue(h), (h & 127) % 4);
  const uint16_t e[] = {3, 1};
  absl::StatusOr<RssTable> t = RssTable::Create(e, 4);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Queue(0x10), 3);
  EXPECT_EQ(t->Queue(0x11), 1);
  EXPECT_EQ(t->entries().size(), 2u);
  const uint16_t three[] = {0, 1, 2};
  EXPECT_FALSE(RssTable::Create(three, 4).ok());
  const uint16_t out_of_range[] = {0, 4};
  absl::StatusOr<RssTable> o = RssTable::Create(out_of_range, 4);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(std::string(o.status().message()).find("entry 1 names queue 4 of 4"), std::string::npos);
}

}  // namespace
}  // namespace npa
