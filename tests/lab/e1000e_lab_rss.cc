// tests/lab/e1000e_lab_rss.cc — npa-lab-e1000e's two-queue step: the
// plug-in runs both of the 82574's queue pairs, RSS programmed with the
// standard key (npa::kDefaultRssKey) over TCP/IPv4 and IPv4 and a 128-entry
// table that alternates the queues, as the shell replays a guest's
// configuration (npa/plugin.h rss_set). The peer opens TCP connections to
// the device from many source ports: each SYN is a new TCP/IPv4 4-tuple.
// Every SYN must come up on the queue the table names for the Toeplitz hash
// npa computes in software (common/rss.h), the device's reported hash must
// be that hash, and both queues must get some: the same frame lands on the
// same queue whichever path a guest is on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <map>
#include <span>

#include "common/clock.h"
#include "common/rss.h"
#include "tests/lab/e1000e_lab_util.h"

namespace e1000e_lab {
namespace {

constexpr uint16_t kSynPort = 7790;
constexpr int kFlows = 24;

// Peer: on the go byte, one non-blocking connect() per flow to ip:port (the
// kernel sends the SYN and retransmits it; the device never answers); the
// sockets stay open until the done byte, so no RST follows.
int PeerSyns(int down, int up, uint32_t ip, int flows) {
  if (write(up, "r", 1) != 1) return 92;
  if (!ReadByte(down, 10000)) return 94;
  std::vector<int> socks;
  for (int i = 0; i < flows; i++) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0) return 95;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kSynPort);
    a.sin_addr.s_addr = ip;
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) return 96;
    socks.push_back(s);
    usleep(5000);
  }
  ReadByte(down, 15000);
  for (int s : socks) close(s);
  return 0;
}

// A TCP SYN to dst_ip:kSynPort, and its source port.
bool IsSyn(const npa_buf* b, uint32_t dst_ip, uint16_t* sport) {
  const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(b));
  if (b->data_len < 54 || f[12] != 0x08 || f[13] != 0x00 || (f[14] & 0x0f) != 5 || f[23] != 6)
    return false;
  uint32_t dst;
  std::memcpy(&dst, f + 30, 4);
  const uint8_t* tcp = f + 34;
  if (dst != dst_ip || (uint16_t{tcp[2]} << 8 | tcp[3]) != kSynPort || !(tcp[13] & 0x02)) return false;
  *sport = static_cast<uint16_t>(uint16_t{tcp[0]} << 8 | tcp[1]);
  return true;
}

}  // namespace

bool TwoQueueRss(npa::shell::PluginDevice& dev, SlotPool& pool, const std::string& ns,
                 uint32_t dut_ip) {
  npa_dev_config cfg{};
  cfg.struct_size = sizeof(cfg);
  cfg.nb_queue_pairs = 2;
  cfg.ring_size = 256;
  cfg.mtu = 1500;  // MAC all-zero: the permanent one
  cfg.offloads = NPA_CAP_RX_CSUM | NPA_CAP_MAC_FILTER | NPA_CAP_MULTIQUEUE;
  absl::Status st = dev.Configure(cfg);
  std::array<uint16_t, 128> table{};
  for (size_t i = 0; i < table.size(); i++) table[i] = static_cast<uint16_t>(i & 1);
  npa_rss_conf rc{};
  rc.struct_size = sizeof(rc);
  rc.hash_types = NPA_RSS_CONF_HASH_TCPV4 | NPA_RSS_CONF_HASH_IPV4;
  rc.key_len = static_cast<uint16_t>(npa::kDefaultRssKey.size());
  rc.table_len = static_cast<uint16_t>(table.size());
  rc.nb_queue_pairs = 2;
  rc.key = npa::kDefaultRssKey.data();
  rc.table = table.data();
  if (st.ok()) st = dev.RssSet(rc);
  if (st.ok()) st = dev.Start();
  Say(st.ok(), "mq: configure 2 queue pairs + rss_set (default key, TCP/IPv4, 128 entries alternating) + start: %s",
      st.ToString().c_str());
  if (!st.ok()) return false;

  Child c = SpawnInNetns(ns, [&](int down, int up) { return PeerSyns(down, up, dut_ip, kFlows); });
  if (c.pid < 0 || !ReadByte(c.from_child, 5000)) {
    Say(false, "mq: peer did not start");
    if (c.pid > 0) WaitChild(c, 0);
    (void)dev.Stop();
    return false;
  }
  if (write(c.to_child, "g", 1) != 1) Say(false, "mq: cannot start the peer");
  const npa::RssHasher hasher;  // the default key, as programmed
  std::map<uint16_t, int> first_queue;  // source port -> queue of its first SYN
  int per_queue[2] = {0, 0}, wrong_queue = 0, wrong_hash = 0;
  const uint64_t t0 = npa::MonotonicMs();
  while (static_cast<int>(first_queue.size()) < kFlows && npa::MonotonicMs() - t0 < 6000) {
    bool any = false;
    for (uint16_t q = 0; q < 2; q++) {
      npa_buf* bufs[32];
      auto n = dev.RxBurst(q, bufs, 32);
      if (!n.ok()) break;
      for (uint16_t i = 0; i < *n; i++) {
        uint16_t sport;
        if (!IsSyn(bufs[i], dut_ip, &sport)) continue;
        npa::RssTuple t;
        const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(bufs[i]));
        if (!npa::ExtractRssTuple(std::span<const uint8_t>(f, bufs[i]->data_len),
                                  npa::kRssTcpv4 | npa::kRssIpv4, &t))
          continue;
        const uint32_t hash = hasher.Hash(t.bytes());
        const uint16_t want = table[hash & 127];
        per_queue[q]++;
        if (q != want) wrong_queue++;
        if (!(bufs[i]->ol_flags & NPA_BUF_OL_RX_RSS_HASH) || bufs[i]->rss_hash != hash) wrong_hash++;
        if (first_queue.emplace(sport, q).second)
          std::printf("E1000E_LAB:      SYN from port %u: hash 0x%08x (device 0x%08x), queue %u (table: %u)\n",
                      sport, hash, bufs[i]->rss_hash, q, want);
      }
      if (*n) {
        any = true;
        pool.Free(q, bufs, *n);
      }
    }
    if (!any) usleep(2000);
  }
  if (write(c.to_child, "d", 1) != 1) Say(false, "mq: cannot stop the peer");
  const int prc = WaitChild(c, 5000);
  const bool all = static_cast<int>(first_queue.size()) == kFlows;
  Say(all && prc == 0, "mq: SYNs of %zu/%d flows received (peer exit %d)", first_queue.size(), kFlows,
      prc);
  Say(wrong_queue == 0 && wrong_hash == 0,
      "mq: every SYN on the queue the table names for npa's Toeplitz hash, with the device's hash "
      "equal to it (%d on the wrong queue, %d with another hash)",
      wrong_queue, wrong_hash);
  Say(per_queue[0] > 0 && per_queue[1] > 0, "mq: both queues received: %d on queue 0, %d on queue 1",
      per_queue[0], per_queue[1]);
  auto s0 = dev.QueueStats(0), s1 = dev.QueueStats(1);
  Say(s0.ok() && s1.ok() && s1->rx_packets >= static_cast<uint64_t>(per_queue[1]),
      "mq: per-queue stats: rx %llu on queue 0, %llu on queue 1",
      s0.ok() ? static_cast<unsigned long long>(s0->rx_packets) : 0ull,
      s1.ok() ? static_cast<unsigned long long>(s1->rx_packets) : 0ull);
  st = dev.Stop();
  Say(st.ok() && pool.available() == pool.count(), "mq: stop: %u/%u buffers back", pool.available(),
      pool.count());
  return all && prc == 0 && wrong_queue == 0 && wrong_hash == 0 && per_queue[0] > 0 && per_queue[1] > 0;
}

}  // namespace e1000e_lab
