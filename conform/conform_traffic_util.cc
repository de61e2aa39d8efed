// conform/conform_traffic_util.cc — see conform_traffic_util.h.
#include "conform/conform_traffic_util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "conform/conform_frame.h"

namespace npa::conform {

// tx_burst of n frames of len bytes; frees what it did not take. Returns the
// accepted count and the first sequence number used in *first.
uint16_t SendFrames(Queue& Q, uint16_t n, size_t len, uint32_t* first) {
  Ctx& c = Q.c;
  std::vector<npa_buf*> b(n ? n : 1);
  uint16_t got = c.svc->Alloc(b.data(), n);
  *first = c.seq;
  for (uint16_t i = 0; i < got; i++) {
    FillFrame(static_cast<uint8_t*>(npa_buf_data(b[i])), len, c.peer->mac(), Q.mac, c.run_id,
              c.seq++);
    b[i]->data_len = static_cast<uint16_t>(len);
    b[i]->pkt_len = static_cast<uint32_t>(len);
  }
  // Marked before the call: a plug-in may complete a frame inside tx_burst.
  c.svc->MarkSent(b.data(), got);
  uint16_t sent = c.fast().tx_burst(Q.q, b.data(), got);
  if (sent > got) sent = got;  // a count above n is itself a FAIL, checked by callers
  c.svc->Unsent(b.data() + sent, static_cast<uint16_t>(got - sent));
  c.svc->Free(b.data() + sent, static_cast<uint16_t>(got - sent));
  return sent;
}

// rx_burst of at most n, then the RX discipline of every frame it handed
// up (SlotPool::CheckRx: a bad frame is a violation, which fails the case,
// and is not returned). A count above n is clamped and sets *over.
uint16_t Rx(Queue& Q, npa_buf** b, uint16_t n, bool* over) {
  uint16_t r = Q.c.fast().rx_burst(Q.q, b, n);
  if (r > n) {
    if (over != nullptr) *over = true;
    r = n;
  }
  return Q.c.svc->CheckRx(b, r);
}

void Reap(Queue& Q) {
  if (Q.c.fast().tx_reap) Q.c.fast().tx_reap(Q.q);
  else Q.c.fast().tx_burst(Q.q, nullptr, 0);
}

// Peer side: count intact frames with seq in [first, first+n).
std::string PeerExpect(Queue& Q, uint32_t first, uint32_t n, int timeout_ms, uint32_t* seen) {
  std::set<uint32_t> got;
  int corrupt = 0;
  uint8_t buf[2048];
  uint32_t sk_pkts = 0, sk_drops = 0;
  Q.c.peer->TakeStats(&sk_pkts, &sk_drops);  // count from here on
  uint64_t t0 = MonotonicMs(), last = t0, end = t0 + timeout_ms;
  while (got.size() < n && MonotonicMs() < end) {
    Reap(Q);
    ssize_t l = Q.c.peer->Recv(buf, sizeof(buf), 20);
    if (l <= 0) continue;
    uint32_t s;
    const FrameCheck k = CheckFrame(buf, static_cast<size_t>(l), Q.c.run_id, &s);
    if (k == FrameCheck::kCorrupt) corrupt++;
    if (k == FrameCheck::kIntact && s >= first && s < first + n) {
      got.insert(s);
      last = MonotonicMs();
    }
  }
  Reap(Q);
  *seen = static_cast<uint32_t>(got.size());
  if (corrupt) return absl::StrCat(corrupt, " corrupt frame(s) at the peer");
  if (got.size() < n) {
    // Say where frames went missing: the peer's socket (kernel drops) or
    // before it (never queued), and whether they were still arriving.
    std::string why;
    if (Q.c.peer->TakeStats(&sk_pkts, &sk_drops))
      why = absl::StrCat("; peer socket: ", sk_pkts, " queued, ", sk_drops, " dropped");
    uint32_t lo = first;
    while (lo < first + n && got.count(lo)) lo++;
    return absl::StrCat("peer saw ", got.size(), " of ", n, " frames (first missing seq +",
                        lo - first, ", last frame at ", last - t0, " of ", timeout_ms, " ms", why,
                        ")");
  }
  return "";
}

// DUT side: rx_burst until n intact frames with seq in [first, first+n).
// *bytes (if given) grows by the pkt_len of every frame rx_burst returned
// that kept the RX discipline (Rx).
std::string DutExpect(Queue& Q, uint32_t first, uint32_t n, int timeout_ms, uint32_t* seen,
                      int max_polls, uint64_t* bytes) {
  Ctx& c = Q.c;
  std::set<uint32_t> got;
  int corrupt = 0, over = 0;
  static uint8_t buf[16384];
  uint64_t end = MonotonicMs() + timeout_ms;
  for (int polls = 0; got.size() < n && MonotonicMs() < end && polls < max_polls; polls++) {
    npa_buf* b[32];
    bool more = false;
    uint16_t r = Rx(Q, b, 32, &more);
    over += more;
    for (uint16_t i = 0; i < r; i++) {
      if (bytes != nullptr) *bytes += b[i]->pkt_len;
      size_t l = LinearizeFrame(b[i], buf, sizeof(buf));
      if (l != b[i]->pkt_len) corrupt++;
      uint32_t s;
      const FrameCheck k = CheckFrame(buf, l, c.run_id, &s);
      if (k == FrameCheck::kCorrupt) corrupt++;
      if (k == FrameCheck::kIntact && s >= first && s < first + n) got.insert(s);
    }
    c.svc->Free(b, r);
    if (r == 0) usleep(200);
  }
  *seen = static_cast<uint32_t>(got.size());
  if (over) return "rx_burst returned more than asked";
  if (corrupt) return absl::StrCat(corrupt, " corrupt frame(s) received");
  if (got.size() < n) return absl::StrCat("received ", got.size(), " of ", n, " frames");
  return "";
}

uint32_t PeerSend(Queue& Q, uint32_t n, size_t len) {
  uint8_t f[2048];
  uint32_t first = Q.c.seq;
  for (uint32_t i = 0; i < n; i++) {
    FillFrame(f, len, Q.mac, Q.c.peer->mac(), Q.c.run_id, Q.c.seq++);
    if (int rc = Q.c.peer->Send(f, len); rc != 0) {
      // The case then fails on what did not arrive; this says why.
      fprintf(stderr, "npa-conform: peer send %u of %u failed: %s (the peer NIC's TX stalled?)\n",
              i + 1, n, strerror(-rc));
      break;
    }
  }
  return first;
}

// Bring a device up for traffic; a failure message or "".
std::string Up(Ctx& c, DevGuard& g, Queue* Q, npa_dev_config cfg) {
  std::string e = BringUp(c, g, cfg);
  if (!e.empty()) return e;
  Q->q = c.ctrl().queue(g.dev, 0);
  memcpy(Q->mac, cfg.mac, 6);
  // Wait (bounded) for the link, so the first frames are not lost to it.
  for (int i = 0; i < 300; i++) {
    npa_link_status l{};
    l.struct_size = sizeof(l);
    if (c.ctrl().link_status(g.dev, &l) == 0 && l.up) break;
    usleep(10000);
  }
  c.peer->Drain();
  return "";
}

void FillTcp(uint8_t* p, const uint8_t dst[6], const uint8_t src[6], uint32_t run, uint32_t seq) {
  memset(p, 0, kTcpHdr + 12);
  memcpy(p, dst, 6);
  memcpy(p + 6, src, 6);
  p[12] = 0x08;
  uint8_t* ip = p + 14;
  ip[0] = 0x45;
  ip[3] = 20 + 20 + 12;
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t addrs[8] = {192, 0, 2, 1, 192, 0, 2, 2};
  memcpy(ip + 12, addrs, 8);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  uint8_t* tcp = ip + 20;
  const uint16_t sport = static_cast<uint16_t>(1024 + seq % 16);
  tcp[0] = sport >> 8;
  tcp[1] = sport & 0xff;
  tcp[3] = 9;       // discard
  tcp[12] = 5 << 4;  // data offset
  tcp[13] = 0x10;    // ACK
  memcpy(p + kTcpHdr, "NPAC", 4);
  memcpy(p + kTcpHdr + 4, &run, 4);
  memcpy(p + kTcpHdr + 8, &seq, 4);
}

bool ParseTcp(const uint8_t* p, size_t l, uint32_t* run, uint32_t* seq) {
  if (l < kTcpHdr + 12 || p[12] != 0x08 || p[13] != 0 || p[23] != 6 ||
      memcmp(p + kTcpHdr, "NPAC", 4) != 0)
    return false;
  memcpy(run, p + kTcpHdr + 4, 4);
  memcpy(seq, p + kTcpHdr + 8, 4);
  return true;
}

int PeerSendTcp(Ctx& c, const uint8_t mac[6], uint32_t n, uint32_t* first) {
  uint8_t f[kTcpHdr + 12];
  *first = c.seq;
  for (uint32_t i = 0; i < n; i++) {
    FillTcp(f, mac, c.peer->mac(), c.run_id, c.seq++);
    if (int rc = c.peer->Send(f, sizeof(f)); rc != 0) return rc;
  }
  return 0;
}

uint32_t CollectTcp(std::span<Queue> qs, uint32_t first, uint32_t n, int timeout_ms,
                    const TcpFrameFn& on_frame, uint32_t* got) {
  if (qs.empty()) return 0;
  Ctx& c = qs[0].c;
  std::set<uint32_t> seen;
  uint32_t dups = 0;
  static uint8_t buf[16384];
  const uint64_t end = MonotonicMs() + timeout_ms;
  for (int polls = 0; seen.size() < n && MonotonicMs() < end && polls < 100000; polls++) {
    bool any = false;
    for (uint16_t q = 0; q < qs.size(); q++) {
      npa_buf* b[32];
      const uint16_t r = Rx(qs[q], b, 32);
      for (uint16_t i = 0; i < r; i++) {
        const size_t l = LinearizeFrame(b[i], buf, sizeof(buf));
        uint32_t run, seq;
        if (!ParseTcp(buf, l, &run, &seq) || run != c.run_id || seq < first || seq >= first + n)
          continue;
        if (!seen.insert(seq).second) {
          dups++;
          continue;
        }
        on_frame(q, seq, {buf, l}, b[i]);
      }
      c.svc->Free(b, r);
      any |= r != 0;
    }
    if (!any) usleep(200);
  }
  *got = static_cast<uint32_t>(seen.size());
  return dups;
}

}  // namespace npa::conform
