#include "shell/rss_rx.h"

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace npa::shell {
namespace {

// The first IPv4 vector of Microsoft's RSS verification suite (default key):
// 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178 over the
// four fields and 0x323e8fc2 over the addresses (common/rss_test.cc has all).
constexpr uint32_t kFourTupleHash = 0x51ccc178, kAddressHash = 0x323e8fc2;

std::vector<uint8_t> UdpFrame() {
  std::vector<uint8_t> f(14 + 20 + 8 + 10, 0);
  f[12] = 0x08;  // IPv4
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[3] = 20 + 8 + 10;
  ip[8] = 64;
  ip[9] = 17;  // UDP
  inet_pton(AF_INET, "66.9.149.187", ip + 12);
  inet_pton(AF_INET, "161.142.100.80", ip + 16);
  uint8_t* udp = ip + 20;
  udp[0] = 2794 >> 8, udp[1] = 2794 & 0xff, udp[2] = 1766 >> 8, udp[3] = 1766 & 0xff;
  udp[5] = 18;
  return f;
}

// One shell buffer (a whole slot, 64-byte aligned) holding `frame`.
struct Slot {
  alignas(64) uint8_t mem[NPA_BUF_SLOT_SIZE];
  npa_buf* Fill(const std::vector<uint8_t>& frame, uint32_t flags = 0) {
    memset(mem, 0, sizeof mem);
    auto* b = reinterpret_cast<npa_buf*>(mem);
    b->data_off = NPA_BUF_DATA_OFF;
    b->data_len = static_cast<uint16_t>(frame.size());
    b->pkt_len = b->data_len;
    b->nb_segs = 1;
    b->ol_flags = flags;
    memcpy(npa_buf_data(b), frame.data(), frame.size());
    return b;
  }
};

TEST(RssRxTest, HashesEachFrameAsTheSpecificationDoes) {
  auto rss = RssRx::Create(nullptr, 4);
  ASSERT_TRUE(rss.ok()) << rss.status();
  Slot s[2];
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08, arp[13] = 0x06;
  // The path's own hash (a plug-in's) is replaced; a frame with nothing to
  // hash loses a stale flag.
  npa_buf* b[2] = {s[0].Fill(UdpFrame(), NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_RX_RSS_HASH),
                   s[1].Fill(arp, NPA_BUF_OL_RX_RSS_HASH)};
  b[0]->rss_hash = 0x1234;
  (*rss)->Apply(b, 2);
  EXPECT_EQ(b[0]->rss_hash, kFourTupleHash);
  EXPECT_EQ(b[0]->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_RX_RSS_HASH);
  EXPECT_EQ(b[1]->ol_flags & NPA_BUF_OL_RX_RSS_HASH, 0u);
  EXPECT_EQ(b[1]->rss_hash, 0u);
  // Default table: 128 entries round robin over the 4 queues.
  EXPECT_EQ((*rss)->Queue(kFourTupleHash), kFourTupleHash % 128 % 4);
}

TEST(RssRxTest, TypesKeyAndTableComeFromTheConfiguration) {
  npa_rss_config c = NPA_RSS_CONFIG_INIT;
  c.hash_types = NPA_RSS_HASH_IPV4;  // addresses only
  auto by_address = RssRx::Create(&c, 2);
  ASSERT_TRUE(by_address.ok()) << by_address.status();
  Slot s;
  npa_buf* b = s.Fill(UdpFrame());
  (*by_address)->Apply(&b, 1);
  EXPECT_EQ(b->rss_hash, kAddressHash);

  uint8_t key[NPA_RSS_KEY_LEN];
  for (unsigned i = 0; i < sizeof key; i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
  const uint16_t table[2] = {1, 0};
  c = NPA_RSS_CONFIG_INIT;
  c.key = key;
  c.key_len = NPA_RSS_KEY_LEN;
  c.table = table;
  c.table_len = 2;
  auto custom = RssRx::Create(&c, 2);
  ASSERT_TRUE(custom.ok()) << custom.status();
  b = s.Fill(UdpFrame());
  (*custom)->Apply(&b, 1);
  auto ref = RssHasher::Create(key);
  ASSERT_TRUE(ref.ok());
  RssTuple t;
  ASSERT_TRUE(ExtractRssTuple(UdpFrame(), kRssAllTypes, &t));
  EXPECT_EQ(b->rss_hash, ref->Hash(t.bytes()));
  EXPECT_NE(b->rss_hash, kFourTupleHash);
  EXPECT_EQ((*custom)->Queue(0), 1);
  EXPECT_EQ((*custom)->Queue(1), 0);
}

TEST(RssRxTest, EveryBadFieldIsNamed) {
  auto bad = [](npa_rss_config c, uint16_t nqp, const char* field) {
    auto r = RssRx::Create(&c, nqp);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(field), std::string::npos) << r.status();
  };
  const uint8_t key[NPA_RSS_KEY_LEN] = {};
  const uint16_t table[4] = {0, 1, 2, 3};
  npa_rss_config c = NPA_RSS_CONFIG_INIT;
  c.struct_size = 8;
  bad(c, 4, "struct_size");
  c = NPA_RSS_CONFIG_INIT;
  c.hash_types = 1u << 9;
  bad(c, 4, "hash_types");
  c = NPA_RSS_CONFIG_INIT;
  c.reserved0 = 1;
  bad(c, 4, "reserved0");
  c = NPA_RSS_CONFIG_INIT;
  c.key_len = NPA_RSS_KEY_LEN;  // without the key
  bad(c, 4, "key_len");
  c = NPA_RSS_CONFIG_INIT;
  c.key = key;
  c.key_len = 39;
  bad(c, 4, "key_len 39");
  c = NPA_RSS_CONFIG_INIT;
  c.table = table;
  c.table_len = 256;
  bad(c, 4, "table_len 256");
  c.table_len = 4;
  bad(c, 3, "table[3] = 3");
  c.table_len = 0;
  bad(c, 4, "table_len 0");
  EXPECT_FALSE(RssRx::Create(nullptr, 0).ok()) << "no queues";
}

}  // namespace
}  // namespace npa::shell
