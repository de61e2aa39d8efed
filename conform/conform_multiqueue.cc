// conform/conform_multiqueue.cc — npa-conform's multi_queue case: a plug-in
// whose caps offer more than one queue pair, configured with all of them
// (docs/conformance.md). Each queue is its own: queue(q) distinct for every
// q and NULL beyond, TX on each reaches the peer, queue_stats answers for
// each. RX: TCP/IPv4 frames from 16 source ports (conform_traffic_util.h
// FillTcp) each arrive once over all the queues; with rss_set over every
// queue (the standard key, TCP/IPv4 and IPv4, a table that cycles the
// queues) each lands on the queue the table names for npa's Toeplitz hash
// of its tuple, as npa/plugin.h's rule for rss_set demands. A plug-in may
// refuse those types with -ENOTSUP; its frames then only have to arrive.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/rss.h"
#include "conform/conform_traffic_util.h"

namespace npa::conform {
namespace {

constexpr uint32_t kRxFrames = 32;

Result MultiQueueOn(Ctx& c, uint16_t nqp) {
  DevGuard g(c);
  npa_dev_config cfg = StdConfig(c);
  cfg.nb_queue_pairs = nqp;
  cfg.offloads |= NPA_CAP_MULTIQUEUE;
  Queue q0{c, nullptr, {}};
  std::string e = Up(c, g, &q0, cfg);
  if (!e.empty()) return Fail(e);
  std::vector<Queue> qs;
  for (uint16_t q = 0; q < nqp; q++) {
    npa_plugin_queue* p = c.ctrl().queue(g.dev, q);
    if (p == nullptr) return Fail(absl::StrCat("queue(", q, ") is NULL with ", nqp, " queue pairs started"));
    for (uint16_t k = 0; k < q; k++)
      if (qs[k].q == p) return Fail(absl::StrCat("queue(", k, ") and queue(", q, ") are the same queue"));
    qs.push_back(Queue{c, p, {}});
    memcpy(qs.back().mac, q0.mac, 6);
  }
  if (c.ctrl().queue(g.dev, nqp) != nullptr)
    return Fail(absl::StrCat("queue(", nqp, ") is not NULL: beyond the configured queue pairs"));

  // TX on every queue reaches the peer.
  for (uint16_t q = 0; q < nqp; q++) {
    uint32_t first = 0, seen = 0;
    const uint16_t sent = SendFrames(qs[q], 8, 60, &first);
    if (sent != 8) return Fail(absl::StrCat("queue ", q, ": tx_burst took ", sent, " of 8 frames"));
    e = PeerExpect(qs[q], first, 8, 2000, &seen);
    if (!e.empty()) return Fail(absl::StrCat("queue ", q, " TX: ", e));
    Reap(qs[q]);
  }

  // RSS over every queue, where the plug-in has it.
  std::vector<uint16_t> table(NPA_RSS_CONF_TABLE_MAX);
  for (size_t i = 0; i < table.size(); i++) table[i] = static_cast<uint16_t>(i % nqp);
  bool rss = false;
  if (c.ctrl().rss_set != nullptr && (c.caps.offloads & NPA_CAP_RSS)) {
    npa_rss_conf rc{};
    rc.struct_size = sizeof(rc);
    rc.hash_types = NPA_RSS_CONF_HASH_TCPV4 | NPA_RSS_CONF_HASH_IPV4;
    rc.key_len = NPA_RSS_CONF_KEY_LEN;
    rc.table_len = static_cast<uint16_t>(table.size());
    rc.nb_queue_pairs = nqp;
    rc.key = kDefaultRssKey.data();
    rc.table = table.data();
    const int r = c.ctrl().rss_set(g.dev, &rc);
    if (r != 0 && r != -ENOTSUP)
      return Fail(absl::StrCat("rss_set over ", nqp, " queue pairs: ", Errno(r)));
    rss = r == 0;
  }

  // RX: every frame once, over all the queues; with RSS on its queue.
  uint32_t first = 0;
  if (int r = PeerSendTcp(c, q0.mac, kRxFrames, &first); r != 0)
    return Fail(absl::StrCat("peer send: ", strerror(-r)));
  const RssHasher hasher;
  std::vector<uint32_t> per_queue(nqp, 0);
  std::string misplaced;
  uint32_t got = 0;
  const uint32_t dups = CollectTcp(
      qs, first, kRxFrames, 3000,
      [&](uint16_t q, uint32_t seq, std::span<const uint8_t> frame, const npa_buf*) {
        per_queue[q]++;
        RssTuple t;
        if (!rss || !ExtractRssTuple(frame, kRssTcpv4 | kRssIpv4, &t)) return;
        const uint32_t hash = hasher.Hash(t.bytes());
        const uint16_t want = table[hash & (table.size() - 1)];
        if (want != q && misplaced.empty())
          misplaced = absl::StrFormat("frame %u (hash 0x%08x) came up on queue %u; the table names %u",
                                      seq - first, hash, q, want);
      },
      &got);
  for (uint16_t q = 0; q <= nqp; q++) {
    npa_plugin_qstats st{};
    st.struct_size = sizeof(st);
    const int r = c.ctrl().queue_stats(g.dev, q, &st);
    if (q < nqp && r != 0) return Fail(absl::StrCat("queue_stats(", q, "): ", Errno(r)));
    if (q == nqp && r == 0) return Fail(absl::StrCat("queue_stats(", q, ") beyond the queues answered 0"));
  }
  g.Release();
  if (dups) return Fail(absl::StrCat(dups, " frame(s) received twice"));
  if (got < kRxFrames)
    return Fail(absl::StrCat("received ", got, " of ", kRxFrames, " frames over ", nqp, " queues"));
  if (!misplaced.empty()) return Fail(misplaced);
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  std::string spread;
  for (uint16_t q = 0; q < nqp; q++) absl::StrAppend(&spread, q ? "/" : "", per_queue[q]);
  return Pass(absl::StrCat(nqp, " queue pairs: TX on each reached the peer; ", kRxFrames,
                           " RX frames once each, ", spread, " by queue",
                           rss ? ", each on the queue the RSS table names" : " (no RSS over them)"));
}

}  // namespace

Result MultiQueue(Ctx& c) {
  NEED_PEER(c);
  const uint16_t nqp = c.caps.max_queue_pairs;
  if (nqp < 2) return Skip("one queue pair (caps.max_queue_pairs)");
  if (!(c.caps.offloads & NPA_CAP_MULTIQUEUE))
    return Fail(absl::StrCat("caps offer ", nqp, " queue pairs without NPA_CAP_MULTIQUEUE"));
  // The services for that many queues, as the shell sets them up for such
  // a guest; then back to one for the cases after this one.
  if (absl::Status s = NewServices(c, nqp); !s.ok())
    return Fail(absl::StrCat("services for ", nqp, " queues: ", s.message()));
  Result r = MultiQueueOn(c, nqp);
  if (absl::Status s = NewServices(c, 1); !s.ok()) {
    fprintf(stderr, "npa-conform: cannot rebuild the services: %s\n", std::string(s.message()).c_str());
    std::exit(2);  // a setup error: nothing after this case could run
  }
  return r;
}

}  // namespace npa::conform
