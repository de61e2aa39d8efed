#include "hypervisor/daemon/guest_rss.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace npa::agent {
namespace {

control::RssConfig Config(uint16_t queues, size_t entries = 128, uint32_t types = kRssAllTypes) {
  control::RssConfig c;
  // A key of our own, so the test sees the configured key is the one used.
  std::string key(kRssKeyLen, '\0');
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<char>(0x11 * (i + 1));
  c.set_key(key);
  c.set_hash_types(types);
  for (size_t i = 0; i < entries; i++) c.add_table(static_cast<uint32_t>((entries - 1 - i) % queues));
  return c;
}

// Ethernet + IPv4 + UDP, 60 bytes, with the given ports.
std::vector<uint8_t> Udp4(uint16_t sport, uint16_t dport) {
  std::vector<uint8_t> f(60, 0);
  for (int i = 0; i < 6; i++) f[i] = 0x02, f[6 + i] = 0x04;
  f[12] = 0x08;  // IPv4
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[3] = 46;  // total length
  ip[8] = 64;
  ip[9] = 17;  // UDP
  const uint8_t src[4] = {10, 0, 0, 1}, dst[4] = {10, 0, 0, 2};
  memcpy(ip + 12, src, 4);
  memcpy(ip + 16, dst, 4);
  uint8_t* udp = ip + 20;
  udp[0] = sport >> 8, udp[1] = sport & 0xff, udp[2] = dport >> 8, udp[3] = dport & 0xff;
  udp[5] = 26;
  return f;
}

TEST(GuestRssTest, RefusalsNameTheField) {
  control::RssConfig c = Config(4);
  c.set_key("short");
  EXPECT_EQ(GuestRss::FromConfig(c, 4).status().message(),
            "rss_config.key has 5 bytes; the Toeplitz key has 40");
  c = Config(4, 128, 0);
  EXPECT_NE(GuestRss::FromConfig(c, 4).status().message().find("rss_config.hash_types 0x0"),
            std::string::npos);
  c = Config(4, 128, kRssAllTypes | 0x100);
  EXPECT_NE(GuestRss::FromConfig(c, 4).status().message().find("rss_config.hash_types 0x13f"),
            std::string::npos);
  for (size_t n : {0, 3, 256}) {
    c = Config(4, n);
    EXPECT_NE(GuestRss::FromConfig(c, 4).status().message().find(
                  "rss_config.table has " + std::to_string(n) + " entries"),
              std::string::npos)
        << n;
  }
  c = Config(4);
  c.set_table(5, 4);
  EXPECT_EQ(GuestRss::FromConfig(c, 4).status().message(),
            "rss_config.table[5] is queue 4; the guest has 4 queue pairs");
  EXPECT_TRUE(GuestRss::FromConfig(Config(4), 4).ok());
}

// The queue is the configured table's entry for the configured key's hash
// of the frame's tuple: computed here independently with common/rss.h.
TEST(GuestRssTest, QueueIsTheTablesEntryForTheFlowsHash) {
  const control::RssConfig c = Config(4);
  auto rss = GuestRss::FromConfig(c, 4);
  ASSERT_TRUE(rss.ok()) << rss.status();
  auto h = RssHasher::Create({reinterpret_cast<const uint8_t*>(c.key().data()), kRssKeyLen});
  ASSERT_TRUE(h.ok());
  std::array<int, 4> per_queue{};
  for (uint16_t p = 1000; p < 1256; p++) {
    const std::vector<uint8_t> f = Udp4(p, 4789);
    RssTuple t;
    ASSERT_TRUE(ExtractRssTuple(f, kRssAllTypes, &t));
    const uint32_t hash = h->Hash(t.bytes());
    const uint16_t want = static_cast<uint16_t>(c.table(static_cast<int>(hash & 127)));
    const uint16_t got = (*rss)->QueueOf(f, 99);
    ASSERT_EQ(got, want) << "port " << p;
    // Split over segments (as the switch's checked segments are), the same.
    iovec segs[3] = {{const_cast<uint8_t*>(f.data()), 14},
                     {const_cast<uint8_t*>(f.data()) + 14, 9},
                     {const_cast<uint8_t*>(f.data()) + 23, f.size() - 23}};
    ASSERT_EQ((*rss)->QueueOf(segs, 3, 99), want) << "port " << p;
    per_queue[got]++;
  }
  for (int q = 0; q < 4; q++) EXPECT_GT(per_queue[q], 30) << "queue " << q << " of 256 flows";
  // Nothing to hash (ARP): the fallback.
  std::vector<uint8_t> arp = Udp4(1, 2);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ((*rss)->QueueOf(arp, 3), 3);
  // Only IPv4 addresses enabled: all ports of one address pair, one queue.
  auto addr_only = GuestRss::FromConfig(Config(4, 128, kRssIpv4), 4);
  ASSERT_TRUE(addr_only.ok());
  const uint16_t q0 = (*addr_only)->QueueOf(Udp4(1, 2), 99);
  for (uint16_t p = 2; p < 64; p++) EXPECT_EQ((*addr_only)->QueueOf(Udp4(p, 2), 99), q0);
}

}  // namespace
}  // namespace npa::agent
