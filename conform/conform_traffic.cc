// conform/conform_traffic.cc — data-path cases of npa-conform against
// the traffic peer (docs/conformance.md). The frames are conform_frame.h's:
// EtherType 0x88b5, "NPAC", the run id and a sequence number, so the flood
// of a QEMU hub (and stale frames) is filtered out.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/rss.h"
#include "conform/conform_frame.h"
#include "conform/conform_runner.h"
#include "conform/conform_traffic_util.h"

namespace npa::conform {
namespace {

Result LinkUp(Ctx& c) {
  DevGuard g(c);
  std::string e = BringUp(c, g, StdConfig(c));
  if (!e.empty()) return Fail(e);
  npa_link_status l{};
  l.struct_size = sizeof(l);
  for (int i = 0; i < 300; i++) {
    int rc = c.ctrl().link_status(g.dev, &l);
    if (rc < 0) return Fail("link_status: " + Errno(rc));
    if (l.up) return Pass(absl::StrCat("up after ", i * 10, " ms, ", l.speed_mbps, " Mb/s"));
    usleep(10000);
  }
  return Fail("link not up within 3 s");
}

Result BurstZero(Ctx& c) {
  DevGuard g(c);
  std::string e = BringUp(c, g, StdConfig(c));
  if (!e.empty()) return Fail(e);
  npa_plugin_queue* q = c.ctrl().queue(g.dev, 0);
  npa_plugin_qstats a{}, b{};
  a.struct_size = b.struct_size = sizeof(a);
  c.ctrl().queue_stats(g.dev, 0, &a);
  npa_buf* dummy[1] = {nullptr};
  if (c.fast().tx_burst(q, dummy, 0) != 0) return Fail("tx_burst(n=0) returned non-zero");
  if (c.fast().rx_burst(q, dummy, 0) != 0) return Fail("rx_burst(n=0) returned non-zero");
  c.ctrl().queue_stats(g.dev, 0, &b);
  if (b.tx_packets != a.tx_packets) return Fail("tx_burst(n=0) counted packets");
  return Pass("0-frame bursts are no-ops");
}

Result TxToPeer(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  std::string e = Up(c, g, &Q, StdConfig(c));
  if (!e.empty()) return Fail(e);
  uint32_t first, seen = 0, sent = 0;
  const size_t sizes[] = {60, 128, 512, 1514};
  // NPA_PLUGIN_F_TX_BYTES (plugin.h "TX byte counts"): tx_bytes grows by
  // exactly the pkt_len of the frames tx_burst took.
  const bool tx_bytes = (c.plugin->flags() & NPA_PLUGIN_F_TX_BYTES) != 0;
  npa_plugin_qstats s0{}, s1{};
  s0.struct_size = s1.struct_size = sizeof(s0);
  if (tx_bytes && c.ctrl().queue_stats(g.dev, 0, &s0) < 0) return Fail("queue_stats failed");
  uint64_t bytes = 0;
  for (int round = 0; round < 16; round++) {
    uint16_t n = SendFrames(Q, 4, sizes[round % 4], &first);
    if (n != 4) return Fail(absl::StrCat("tx_burst took ", n, " of 4 on an idle ring"));
    bytes += 4 * sizes[round % 4];
    uint32_t s;
    e = PeerExpect(Q, first, 4, 2000, &s);
    seen += s;
    sent += 4;
    if (!e.empty()) return Fail(absl::StrCat("round ", round, ": ", e));
  }
  if (tx_bytes) {
    if (c.ctrl().queue_stats(g.dev, 0, &s1) < 0) return Fail("queue_stats failed");
    if (s1.tx_bytes - s0.tx_bytes != bytes)
      return Fail(absl::StrCat("NPA_PLUGIN_F_TX_BYTES: queue_stats.tx_bytes grew by ",
                               s1.tx_bytes - s0.tx_bytes, ", the frames tx_burst took hold ",
                               bytes, " bytes"));
  }
  return Pass(absl::StrCat(seen, "/", sent, " frames (60..1514 B) intact at the peer",
                           tx_bytes ? ", tx_bytes exact" : ""));
}

Result RxFromPeer(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  std::string e = Up(c, g, &Q, StdConfig(c));
  if (!e.empty()) return Fail(e);
  uint32_t total = 0;
  const size_t sizes[] = {60, 128, 512, 1514};
  // NPA_PLUGIN_F_RX_BYTES (plugin.h "RX byte counts"): rx_bytes grows by
  // exactly the pkt_len of the frames rx_burst returned.
  const bool rx_bytes = (c.plugin->flags() & NPA_PLUGIN_F_RX_BYTES) != 0;
  npa_plugin_qstats s0{}, s1{};
  s0.struct_size = s1.struct_size = sizeof(s0);
  if (rx_bytes && c.ctrl().queue_stats(g.dev, 0, &s0) < 0) return Fail("queue_stats failed");
  uint64_t bytes = 0;
  for (int round = 0; round < 8; round++) {
    uint32_t first = PeerSend(Q, 8, sizes[round % 4]);
    uint32_t s;
    e = DutExpect(Q, first, 8, 2000, &s, 1 << 30, &bytes);
    total += s;
    if (!e.empty()) return Fail(absl::StrCat("round ", round, ": ", e));
  }
  if (rx_bytes) {
    if (c.ctrl().queue_stats(g.dev, 0, &s1) < 0) return Fail("queue_stats failed");
    if (s1.rx_bytes - s0.rx_bytes != bytes)
      return Fail(absl::StrCat("NPA_PLUGIN_F_RX_BYTES: queue_stats.rx_bytes grew by ",
                               s1.rx_bytes - s0.rx_bytes, ", the frames rx_burst returned hold ",
                               bytes, " bytes"));
  }
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(absl::StrCat(total, "/64 frames (60..1514 B) intact from the peer",
                           rx_bytes ? ", rx_bytes exact" : ""));
}

Result BurstOne(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  std::string e = Up(c, g, &Q, StdConfig(c));
  if (!e.empty()) return Fail(e);
  uint32_t first, s;
  if (SendFrames(Q, 1, 60, &first) != 1) return Fail("tx_burst(n=1) did not take the frame");
  e = PeerExpect(Q, first, 1, 2000, &s);
  if (!e.empty()) return Fail(e);
  first = PeerSend(Q, 1, 60);
  npa_buf* b[1];
  uint64_t end = MonotonicMs() + 2000;
  uint16_t r = 0;
  while (MonotonicMs() < end) {
    bool over = false;
    r = Rx(Q, b, 1, &over);
    if (over) return Fail("rx_burst(n=1) returned more than 1");
    if (r == 1) {
      uint8_t buf[2048];
      uint32_t seq;
      size_t l = LinearizeFrame(b[0], buf, sizeof(buf));
      const FrameCheck k = CheckFrame(buf, l, c.run_id, &seq);
      c.svc->Free(b, 1);
      if (k == FrameCheck::kIntact && seq == first) return Pass("1-frame TX and RX bursts");
      if (k == FrameCheck::kCorrupt) return Fail("corrupt frame");
    }
    usleep(200);
  }
  return Fail("rx_burst(n=1) never delivered the frame");
}

Result FullRingTx(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  npa_dev_config cfg = StdConfig(c);
  std::string e = Up(c, g, &Q, cfg);
  if (!e.empty()) return Fail(e);
  uint16_t n = static_cast<uint16_t>(cfg.ring_size + 32);
  uint32_t first, seen;
  uint16_t sent = SendFrames(Q, n, 60, &first);
  if (sent == 0 || sent > n) return Fail(absl::StrCat("tx_burst of ", n, " returned ", sent));
  e = PeerExpect(Q, first, sent, 5000, &seen);
  if (!e.empty()) return Fail(absl::StrCat("after a ", sent, "-frame burst: ", e));
  // And the ring is usable again once completions are reaped.
  uint16_t again = SendFrames(Q, n, 60, &first);
  e = PeerExpect(Q, first, again, 5000, &seen);
  if (again == 0 || !e.empty()) return Fail("second full burst: " + e);
  return Pass(absl::StrCat("burst of ", n, " on a ", cfg.ring_size, "-entry ring took ", sent,
                           ", all delivered; again ", again));
}

Result FullRingRx(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  npa_dev_config cfg = StdConfig(c);
  std::string e = Up(c, g, &Q, cfg);
  if (!e.empty()) return Fail(e);
  // Overrun the RX ring without polling: the device must drop, not corrupt.
  uint32_t n = cfg.ring_size * 2u;
  uint32_t first = PeerSend(Q, n, 60);
  usleep(200000);
  uint32_t seen;
  e = DutExpect(Q, first, n, 1500, &seen);
  if (e.find("corrupt") != std::string::npos || e.find("more than") != std::string::npos)
    return Fail(e);
  if (seen == 0) return Fail("nothing received after an RX overrun");
  // The ring recovers.
  first = PeerSend(Q, 4, 60);
  uint32_t s2;
  e = DutExpect(Q, first, 4, 2000, &s2);
  if (!e.empty()) return Fail("after overrun: " + e);
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(absl::StrCat(seen, " of ", n, " frames kept by a ", cfg.ring_size,
                           "-entry ring, intact; recovered"));
}

Result QuiesceInFlight(Ctx& c) {
  if (c.ctrl().quiesce == nullptr) return Skip("plug-in has no quiesce op");
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  npa_dev_config cfg = StdConfig(c);
  std::string e = Up(c, g, &Q, cfg);
  if (!e.empty()) return Fail(e);
  uint32_t first;
  uint16_t sent = SendFrames(Q, cfg.ring_size, 1514, &first);
  int rc = -EAGAIN, calls = 0;
  uint64_t t0 = MonotonicMs();
  while (rc == -EAGAIN && calls < 50) {
    rc = c.ctrl().quiesce(g.dev, 100000);
    calls++;
  }
  if (rc != 0) return Fail("quiesce: " + Errno(rc));
  uint64_t ms = MonotonicMs() - t0;
  if (sent == 0) return Fail("nothing was in flight");
  // Stopped taking new TX work.
  uint32_t f2;
  uint16_t more = SendFrames(Q, 1, 60, &f2);
  if (more != 0) return Fail("tx_burst took a frame after quiesce");
  uint32_t seen;
  e = PeerExpect(Q, first, sent, 3000, &seen);
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  if (!e.empty()) return Fail("frames in flight at quiesce: " + e);
  return Pass(absl::StrCat(sent, " in flight, idle after ", calls, " call(s) / ", ms,
                           " ms, all delivered"));
}

Result CountersMonotonic(Ctx& c) {
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  npa_dev_config cfg = StdConfig(c);
  std::string e = Up(c, g, &Q, cfg);
  if (!e.empty()) return Fail(e);
  npa_plugin_qstats prev{};
  uint64_t tx_sent = 0, rx_seen = 0;
  for (int round = 0; round < 2 * c.opt.loops; round++) {
    uint32_t first, s;
    tx_sent += SendFrames(Q, 16, 100, &first);
    PeerExpect(Q, first, 16, 1000, &s);
    first = PeerSend(Q, 16, 100);
    DutExpect(Q, first, 16, 1000, &s);
    rx_seen += s;
    if (round % 2 == 1) {  // across stop/start too
      if (c.ctrl().stop(g.dev) < 0) return Fail("stop");
      g.started = false;
      if (c.ctrl().configure(g.dev, &cfg) < 0 || c.ctrl().start(g.dev) < 0)
        return Fail("restart");
      g.started = true;
      Q.q = c.ctrl().queue(g.dev, 0);
    }
    npa_plugin_qstats s2{};
    s2.struct_size = sizeof(s2);
    int rc = c.ctrl().queue_stats(g.dev, 0, &s2);
    if (rc < 0) return Fail("queue_stats: " + Errno(rc));
    if (s2.rx_packets < prev.rx_packets || s2.rx_bytes < prev.rx_bytes ||
        s2.tx_packets < prev.tx_packets || s2.tx_bytes < prev.tx_bytes ||
        s2.rx_dropped < prev.rx_dropped)
      return Fail(absl::StrCat("a counter went backwards in round ", round));
    prev = s2;
  }
  if (prev.tx_packets < tx_sent) return Fail(absl::StrCat("tx_packets ", prev.tx_packets,
                                                          " < frames accepted ", tx_sent));
  if (prev.rx_packets < rx_seen) return Fail(absl::StrCat("rx_packets ", prev.rx_packets,
                                                          " < frames delivered ", rx_seen));
  return Pass(absl::StrCat("tx ", prev.tx_packets, " rx ", prev.rx_packets,
                           ", never backwards across ", c.opt.loops, " restarts"));
}

Result RxInterrupt(Ctx& c) {
  if (!(c.caps.offloads & NPA_CAP_RX_INTR)) return Skip("RX_INTR not claimed");
  if (c.fast().rx_intr_enable == nullptr || c.fast().get_irq_vector == nullptr)
    return Fail("RX_INTR claimed without rx_intr_enable/get_irq_vector");
  NEED_PEER(c);
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  npa_dev_config cfg = StdConfig(c);
  cfg.rx_intr = 1;
  std::string e = Up(c, g, &Q, cfg);
  if (!e.empty()) return Fail(e);
  int vec = c.fast().get_irq_vector(Q.q);
  if (vec < 0 || static_cast<size_t>(vec) >= c.svc->irq_fds().size())
    return Fail(absl::StrCat("get_irq_vector ", vec, " with ", c.svc->irq_fds().size(),
                             " vectors wired"));
  int fd = c.svc->irq_fds()[vec];
  uint64_t junk;
  int wakeups = 0;
  for (int round = 0; round < 3; round++) {
    while (read(fd, &junk, 8) == 8) {
    }
    if (c.fast().rx_intr_enable(Q.q, 1) < 0) return Fail("rx_intr_enable(1)");
    npa_buf* b[32];
    uint16_t r = Rx(Q, b, 32);  // the re-poll after arming
    c.svc->Free(b, r);
    uint32_t first = PeerSend(Q, 1, 60);
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 3000) != 1)
      return Fail(absl::StrCat("no MSI-X interrupt on vector ", vec, " within 3 s"));
    wakeups++;
    if (c.fast().rx_intr_enable(Q.q, 0) < 0) return Fail("rx_intr_enable(0)");
    uint32_t s;
    e = DutExpect(Q, first, 1, 2000, &s);
    if (!e.empty()) return Fail("after the interrupt: " + e);
  }
  return Pass(absl::StrCat(wakeups, " RX interrupts on vector ", vec, ", frame delivered each"));
}

// rss_hash_matches: TCP/IPv4 frames from the peer (192.0.2.1 -> .2, TEST-NET-1,
// source ports 1024..1039, payload "NPAC" + run + seq after the TCP header)
// with rss_set programmed with the standard key and every type: each frame
// whose hash the plug-in reports must carry the software Toeplitz of its
// tuple (common/rss.h), and NPA_CAP_RSS promises the report, so at least one
// must. A mismatch usually means the key went into the device in the wrong
// byte order.
Result RssHashMatches(Ctx& c) {
  NEED_PEER(c);
  if (c.ctrl().rss_set == nullptr || !(c.caps.offloads & NPA_CAP_RSS))
    return Skip("plug-in has no rss_set or offers no NPA_CAP_RSS");
  DevGuard g(c);
  Queue Q{c, nullptr, {}};
  std::string e = Up(c, g, &Q, StdConfig(c));
  if (!e.empty()) return Fail(e);
  uint16_t table[NPA_RSS_CONF_TABLE_MAX] = {};
  npa_rss_conf rc{};
  rc.struct_size = sizeof(rc);
  rc.hash_types = kRssAllTypes;
  rc.key_len = NPA_RSS_CONF_KEY_LEN;
  rc.table_len = NPA_RSS_CONF_TABLE_MAX;
  rc.nb_queue_pairs = 1;
  rc.key = kDefaultRssKey.data();
  rc.table = table;
  if (int rc2 = c.ctrl().rss_set(g.dev, &rc); rc2 != 0) return Fail("rss_set: " + Errno(rc2));
  const RssHasher hasher;
  constexpr uint32_t kFrames = 16;
  uint32_t first = 0;
  if (int rc2 = PeerSendTcp(c, Q.mac, kFrames, &first); rc2 != 0)
    return Fail(absl::StrCat("peer send: ", strerror(-rc2)));
  uint32_t got = 0, hashed = 0;
  std::string mismatch;
  CollectTcp({&Q, 1}, first, kFrames, 2000,
             [&](uint16_t, uint32_t seq, std::span<const uint8_t> frame, const npa_buf* b) {
               RssTuple t;
               if (!(b->ol_flags & NPA_BUF_OL_RX_RSS_HASH) || !ExtractRssTuple(frame, kRssAllTypes, &t))
                 return;
               hashed++;
               const uint32_t want = hasher.Hash(t.bytes());
               if (b->rss_hash != want && mismatch.empty())
                 mismatch = absl::StrFormat(
                     "frame %u: the device reported 0x%08x, the Toeplitz hash of its TCP/IPv4 "
                     "tuple is 0x%08x (key byte order?)",
                     seq - first, b->rss_hash, want);
             },
             &got);
  g.Release();
  if (!mismatch.empty()) return Fail(mismatch);
  if (got < kFrames) return Fail(absl::StrCat("received ", got, " of ", kFrames, " frames"));
  if (hashed == 0) return Fail("NPA_CAP_RSS promises a hash report; no frame carried one");
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(absl::StrCat(hashed, "/", kFrames, " reported hashes equal the software Toeplitz"));
}

}  // namespace

std::vector<Case> TrafficCases() {
  return {
      {"link_up", LinkUp},
      {"burst_zero", BurstZero},
      {"tx_to_peer", TxToPeer},
      {"rx_from_peer", RxFromPeer},
      {"burst_one", BurstOne},
      {"burst_full_ring_tx", FullRingTx},
      {"burst_full_ring_rx", FullRingRx},
      {"quiesce_in_flight", QuiesceInFlight},
      {"counters_monotonic", CountersMonotonic},
      {"rx_interrupt", RxInterrupt},
      {"rss_hash_matches", RssHashMatches},
      {"multi_queue", MultiQueue},
  };
}

}  // namespace npa::conform
