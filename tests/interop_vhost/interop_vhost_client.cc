// tests/interop_vhost/interop_vhost_client.cc — libnpa_shell (standalone
// vhost-user front end) against DPDK's net_vhost in dpdk-testpmd, which
// reflects every frame (--forward-mode=macswap). Started by run_interop.sh.
//
// For each queue pair and each frame size, sends sequence-numbered frames
// with a known payload, keeping at most kWindow of them outstanding (so the
// RX ring can never overflow and testpmd never has to drop), and checks that
// every frame comes back, in order, on the same queue, with its MACs swapped
// and its payload intact. Then one multi-segment TX frame larger than a
// buffer, which comes back split over several RX buffers when the back end
// negotiated MRG_RXBUF. Exit status 0 only if everything matched.
//
// ring: split or packed forces that ring kind (npa_shell_queue_config.ring)
// and fails unless the shell reports it in use (npa_shell_info.ring): a
// packed run that quietly fell back to split does not pass. auto (default)
// takes what the back end offers.
//
// Usage: interop_vhost_client <vhost-user socket> <queue pairs> [frames] [split|packed|auto]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "npa/shell.hpp"

namespace {

constexpr uint8_t kDst[6] = {0x02, 0, 0, 0, 0, 0x02};
constexpr uint8_t kSrc[6] = {0x02, 0, 0, 0, 0, 0x01};
constexpr uint16_t kWindow = 256;
constexpr uint16_t kEtherType = 0x88b5;  // IEEE local experimental

double Now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

uint8_t Pattern(uint32_t seq, uint32_t i) { return static_cast<uint8_t>(seq * 7u + i * 13u + 1u); }

// Frame: dst, src, ethertype, then u16 queue, u32 seq, u32 size, pattern.
void Fill(uint8_t* p, uint16_t q, uint32_t seq, uint32_t size) {
  memcpy(p, kDst, 6);
  memcpy(p + 6, kSrc, 6);
  p[12] = kEtherType >> 8;
  p[13] = kEtherType & 0xff;
  memcpy(p + 14, &q, 2);
  memcpy(p + 16, &seq, 4);
  memcpy(p + 20, &size, 4);
  for (uint32_t i = 24; i < size; i++) p[i] = Pattern(seq, i);
}

// Copies a (possibly multi-segment) frame into out.
uint32_t Flatten(const npa_buf* b, std::vector<uint8_t>* out) {
  out->clear();
  for (const npa_buf* s = b; s != nullptr; s = s->next) {
    const uint8_t* d = static_cast<const uint8_t*>(npa_buf_data(s));
    out->insert(out->end(), d, d + s->data_len);
  }
  return static_cast<uint32_t>(out->size());
}

struct Checker {
  int errors = 0;
  void Fail(const char* fmt, uint64_t a, uint64_t b, uint64_t c) {
    if (errors++ < 20) {
      fprintf(stderr, "MISMATCH: ");
      fprintf(stderr, fmt, static_cast<unsigned long long>(a), static_cast<unsigned long long>(b),
              static_cast<unsigned long long>(c));
      fprintf(stderr, "\n");
    }
  }
  // Checks one echoed frame of queue q; expects sequence *next.
  void Check(const npa_buf* b, uint16_t q, uint32_t size, uint32_t* next) {
    std::vector<uint8_t> f;
    uint32_t len = Flatten(b, &f);
    if (len != b->pkt_len) Fail("q%llu: segments sum to %llu, pkt_len %llu", q, len, b->pkt_len);
    if (len != size) {
      Fail("q%llu: frame of %llu bytes, sent %llu", q, len, size);
      return;
    }
    if (memcmp(f.data(), kSrc, 6) != 0 || memcmp(f.data() + 6, kDst, 6) != 0)
      Fail("q%llu seq %llu: MACs not swapped (%llu)", q, *next, 0);
    uint16_t fq;
    uint32_t seq, fsize;
    memcpy(&fq, f.data() + 14, 2);
    memcpy(&seq, f.data() + 16, 4);
    memcpy(&fsize, f.data() + 20, 4);
    if (fq != q) Fail("frame of queue %llu came back on queue %llu (seq %llu)", fq, q, seq);
    if (seq != *next) Fail("q%llu: got seq %llu, expected %llu (lost or reordered)", q, seq, *next);
    if (fsize != size) Fail("q%llu seq %llu: size field %llu", q, seq, fsize);
    for (uint32_t i = 24; i < size; i++)
      if (f[i] != Pattern(seq, i)) {
        Fail("q%llu seq %llu: payload differs at byte %llu", q, seq, i);
        break;
      }
    *next = seq + 1;
  }
};

// Sends `count` frames of `size` bytes on every queue, checks the echoes.
bool RunSize(npa::Shell& sh, uint16_t nq, uint32_t size, uint32_t count, Checker* ck) {
  std::vector<uint32_t> sent(nq, 0), next(nq, 0);
  const double deadline = Now() + 30;
  double last_progress = Now();
  uint64_t total = 0;
  while (Now() < deadline) {
    bool done = true;
    for (uint16_t q = 0; q < nq; q++) {
      npa_buf* b[32];
      // TX: keep at most kWindow frames outstanding on this queue.
      uint32_t room = kWindow - (sent[q] - next[q]);
      uint32_t want = std::min<uint32_t>({room, count - sent[q], 32u});
      if (want > 0) {
        uint16_t n = sh.Alloc(q, b, static_cast<uint16_t>(want));
        for (uint16_t i = 0; i < n; i++) {
          Fill(static_cast<uint8_t*>(npa_buf_data(b[i])), q, sent[q] + i, size);
          b[i]->data_len = static_cast<uint16_t>(size);
          b[i]->pkt_len = size;
        }
        uint16_t s = sh.TxBurst(q, b, n);
        sh.Free(q, b + s, static_cast<uint16_t>(n - s));
        sent[q] += s;
      }
      uint16_t r = sh.RxBurst(q, b, 32);
      for (uint16_t i = 0; i < r; i++) ck->Check(b[i], q, size, &next[q]);
      sh.Free(q, b, r);
      if (r) last_progress = Now();
      total += r;
      if (next[q] < count) done = false;
    }
    if (done) break;
    if (Now() - last_progress > 5) {
      fprintf(stderr, "no echo for 5 s\n");
      break;
    }
  }
  bool ok = true;
  for (uint16_t q = 0; q < nq; q++) {
    printf("size %4u q%u: sent %u, echoed in order %u\n", size, q, sent[q], next[q]);
    if (next[q] != count) ok = false;
  }
  return ok && ck->errors == 0;
}

// One frame of `size` bytes in two TX segments; expects it back whole.
bool RunMultiSeg(npa::Shell& sh, uint16_t q, uint32_t size, bool mrg, Checker* ck) {
  npa_buf* b[2];
  if (sh.Alloc(q, b, 2) != 2) return false;
  std::vector<uint8_t> f(size);
  Fill(f.data(), q, 0, size);
  uint32_t first = 2000;
  memcpy(npa_buf_data(b[0]), f.data(), first);
  memcpy(npa_buf_data(b[1]), f.data() + first, size - first);
  b[0]->data_len = static_cast<uint16_t>(first);
  b[1]->data_len = static_cast<uint16_t>(size - first);
  b[0]->pkt_len = size;
  b[0]->nb_segs = 2;
  b[0]->next = b[1];
  if (sh.TxBurst(q, b, 1) != 1) {
    sh.Free(q, b, 1);
    return false;
  }
  const double deadline = Now() + 5;
  while (Now() < deadline) {
    npa_buf* r[32];
    uint16_t n = sh.RxBurst(q, r, 32);
    for (uint16_t i = 0; i < n; i++) {
      uint32_t next = 0;
      printf("multi-segment: %u-byte frame came back in %u segment(s)\n", r[i]->pkt_len,
             r[i]->nb_segs);
      ck->Check(r[i], q, size, &next);
      if (mrg && r[i]->nb_segs < 2) ck->Fail("MRG_RXBUF: %llu-byte frame in %llu segment%llu", size, r[i]->nb_segs, 0);
    }
    sh.Free(q, r, n);
    if (n) return ck->errors == 0;
  }
  fprintf(stderr, "multi-segment frame not echoed within 5 s\n");
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <vhost-user socket> <queue pairs> [frames] [split|packed|auto]\n",
            argv[0]);
    return 2;
  }
  const char* ring = argc > 4 ? argv[4] : "auto";
  uint32_t ring_kind = NPA_RING_AUTO;
  if (strcmp(ring, "split") == 0) {
    ring_kind = NPA_RING_SPLIT;
  } else if (strcmp(ring, "packed") == 0) {
    ring_kind = NPA_RING_PACKED;
  } else if (strcmp(ring, "auto") != 0) {
    fprintf(stderr, "ring must be split, packed or auto, not '%s'\n", ring);
    return 2;
  }
  const uint16_t nq = static_cast<uint16_t>(atoi(argv[2]));
  const uint32_t count = argc > 3 ? static_cast<uint32_t>(atoi(argv[3])) : 20000;
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.vhost_user_path = argv[1];
  oa.name = "interop";
  oa.connect_timeout_ms = 10000;
  npa::Shell sh;
  if (npa::Shell::Open(oa, &sh) < 0) {
    fprintf(stderr, "open: %s\n", npa_shell_last_error(nullptr));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = nq;
  qc.ring_size = 512;
  qc.offloads = NPA_OFFLOAD_MRG_RXBUF | NPA_OFFLOAD_TX_CSUM;
  qc.ring = ring_kind;
  if (sh.Configure(qc) < 0 || sh.Start() < 0) {
    fprintf(stderr, "configure/start: %s\n", sh.last_error());
    return 1;
  }
  // Post RX buffers (the owning thread does it in rx_burst) before sending.
  for (uint16_t q = 0; q < nq; q++) sh.RxBurst(q, nullptr, 0);
  npa_shell_info info;
  sh.Info(&info);
  printf("shell: %u queue pair(s), path %d, hugepages %u, offloads 0x%llx, ring %s\n",
         info.nb_queue_pairs, info.path, info.hugepages, static_cast<unsigned long long>(info.offloads),
         info.ring == NPA_RING_PACKED ? "packed" : info.ring == NPA_RING_SPLIT ? "split" : "?");
  if (ring_kind != NPA_RING_AUTO && info.ring != ring_kind) {
    fprintf(stderr, "asked for the %s ring, the shell runs %u\n", ring, info.ring);
    return 1;
  }
  Checker ck;
  bool ok = RunSize(sh, nq, 64, count, &ck) && RunSize(sh, nq, 1500, count, &ck);
  const bool mrg = (info.offloads & NPA_OFFLOAD_MRG_RXBUF) != 0;
  if (ok) ok = RunMultiSeg(sh, static_cast<uint16_t>(nq - 1), 3000, mrg, &ck);
  npa_queue_stats st;
  sh.Stats(UINT16_MAX, &st);
  printf("stats: rx %llu pkts %llu B, tx %llu pkts %llu B, kicks %llu, tx_full %llu\n",
         static_cast<unsigned long long>(st.rx_packets), static_cast<unsigned long long>(st.rx_bytes),
         static_cast<unsigned long long>(st.tx_packets), static_cast<unsigned long long>(st.tx_bytes),
         static_cast<unsigned long long>(st.kicks), static_cast<unsigned long long>(st.tx_full));
  if (st.rx_packets != st.tx_packets) {
    fprintf(stderr, "rx_packets %llu != tx_packets %llu\n", static_cast<unsigned long long>(st.rx_packets),
            static_cast<unsigned long long>(st.tx_packets));
    ok = false;
  }
  printf("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
