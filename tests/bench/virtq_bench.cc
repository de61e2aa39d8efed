// tests/bench/virtq_bench.cc — quick local microbenchmark of the TX and RX split
// ring fast paths, with a minimal device on another thread (it copies each
// frame's first 64 bytes, as a vhost back end touches the data). Not the
// official benchmark (that compares against DPDK end to end); this one
// isolates the driver side. Usage: shell_virtq_bench [seconds] [cpu_drv cpu_dev]
//
// Single-thread form, for instruction counts that repeat exactly:
//   shell_virtq_bench --st BURSTS
// runs BURSTS rounds of (TX burst of 32, the device step inline, RX burst of
// 32) on one thread; the driver's side of each round is DriverRound
// (noinline), so callgrind counts it alone:
//   valgrind --tool=callgrind --toggle-collect='*DriverRound*'
//            build/tests/bench/shell_virtq_bench --st 20000
// Ir of DriverRound / (BURSTS * 32) is the driver's cost per frame sent
// and received; --toggle-collect='*TxRound*' (resp. '*RxRound*') splits it
// into TX (alloc, TX burst with its completion reaping) and RX (RX burst
// with its refill, the application's free).
//   shell_virtq_bench --st BURSTS packed
// does the same over packed rings (VIRTIO 1.1 2.8; the device side inline,
// in order, one used descriptor per frame).
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/clock.h"
#include "shell/buf_pool.h"
#include "shell/region.h"
#include "shell/emulated/virtq.h"

using namespace npa::shell;

namespace {
void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
constexpr uint16_t kRing = 1024;

// Device side: consumes the TX ring (completing every buffer) and fills the
// RX ring with 64-byte frames, both in bursts of up to 32.
void Device(const VringAddrs tx, const VringAddrs rx, std::atomic<bool>* stop, uint64_t* copied,
            int cpu) {
  Pin(cpu);
  auto* td = reinterpret_cast<npa_vring_desc*>(tx.desc);
  auto* ta = reinterpret_cast<npa_vring_avail*>(tx.avail);
  auto* tu = reinterpret_cast<npa_vring_used*>(tx.used);
  auto* rd = reinterpret_cast<npa_vring_desc*>(rx.desc);
  auto* ra = reinterpret_cast<npa_vring_avail*>(rx.avail);
  auto* ru = reinterpret_cast<npa_vring_used*>(rx.used);
  tu->flags = NPA_VRING_USED_F_NO_NOTIFY;
  ru->flags = NPA_VRING_USED_F_NO_NOTIFY;
  uint16_t tlast = 0, tused = 0, rlast = 0, rused = 0;
  uint8_t sink[64];
  uint8_t frame[12 + 64] = {};
  uint64_t n = 0;
  while (!stop->load(std::memory_order_relaxed)) {
    uint16_t av = __atomic_load_n(&ta->idx, __ATOMIC_ACQUIRE);
    uint16_t k = static_cast<uint16_t>(av - tlast);
    if (k > 32) k = 32;
    for (uint16_t i = 0; i < k; i++) {
      uint16_t id = ta->ring[tlast++ & (kRing - 1)];
      memcpy(sink, reinterpret_cast<void*>(td[id].addr + 12), 64);
      tu->ring[tused++ & (kRing - 1)] = {id, 0};
    }
    if (k) __atomic_store_n(&tu->idx, tused, __ATOMIC_RELEASE);
    av = __atomic_load_n(&ra->idx, __ATOMIC_ACQUIRE);
    k = static_cast<uint16_t>(av - rlast);
    if (k > 32) k = 32;
    for (uint16_t i = 0; i < k; i++) {
      uint16_t id = ra->ring[rlast++ & (kRing - 1)];
      memcpy(reinterpret_cast<void*>(rd[id].addr), frame, sizeof frame);
      ru->ring[rused++ & (kRing - 1)] = {id, sizeof frame};
    }
    if (k) __atomic_store_n(&ru->idx, rused, __ATOMIC_RELEASE);
    n += k;
  }
  *copied = n + sink[0] * 0;
}
// One device pass over both rings, at most 32 each, on the caller's thread.
struct InlineDevice {
  explicit InlineDevice(const VringAddrs& tx, const VringAddrs& rx)
      : td(reinterpret_cast<npa_vring_desc*>(tx.desc)),
        ta(reinterpret_cast<npa_vring_avail*>(tx.avail)),
        tu(reinterpret_cast<npa_vring_used*>(tx.used)),
        rd(reinterpret_cast<npa_vring_desc*>(rx.desc)),
        ra(reinterpret_cast<npa_vring_avail*>(rx.avail)),
        ru(reinterpret_cast<npa_vring_used*>(rx.used)) {
    tu->flags = NPA_VRING_USED_F_NO_NOTIFY;
    ru->flags = NPA_VRING_USED_F_NO_NOTIFY;
  }
  void Step() {
    uint16_t k = static_cast<uint16_t>(ta->idx - tlast);
    if (k > 32) k = 32;
    for (uint16_t i = 0; i < k; i++) {
      uint16_t id = ta->ring[tlast++ & (kRing - 1)];
      memcpy(sink, reinterpret_cast<void*>(td[id].addr + 12), 64);
      tu->ring[tused++ & (kRing - 1)] = {id, 0};
    }
    __atomic_store_n(&tu->idx, tused, __ATOMIC_RELEASE);
    k = static_cast<uint16_t>(ra->idx - rlast);
    if (k > 32) k = 32;
    for (uint16_t i = 0; i < k; i++) {
      uint16_t id = ra->ring[rlast++ & (kRing - 1)];
      memcpy(reinterpret_cast<void*>(rd[id].addr), frame, sizeof frame);
      ru->ring[rused++ & (kRing - 1)] = {id, sizeof frame};
    }
    __atomic_store_n(&ru->idx, rused, __ATOMIC_RELEASE);
  }
  npa_vring_desc* td;
  npa_vring_avail* ta;
  npa_vring_used* tu;
  npa_vring_desc* rd;
  npa_vring_avail* ra;
  npa_vring_used* ru;
  uint16_t tlast = 0, tused = 0, rlast = 0, rused = 0;
  uint8_t sink[64];
  uint8_t frame[12 + 64] = {};
};

// The same over packed rings: in order, one descriptor per frame; a used
// descriptor goes where the available one was (2.8.7 with in-order
// service), AVAIL = USED = the device's wrap counter.
struct PackedInlineDevice {
  struct Side {
    npa_vring_packed_desc* d;
    uint16_t pos = 0;
    bool wrap = true;
    bool Avail() const {
      const uint16_t f = __atomic_load_n(&d[pos].flags, __ATOMIC_ACQUIRE);
      return ((f & NPA_VRING_PACKED_F_AVAIL) != 0) == wrap && ((f & NPA_VRING_PACKED_F_USED) != 0) != wrap;
    }
    void Use(uint32_t len) {
      d[pos].len = len;
      __atomic_store_n(&d[pos].flags,
                       static_cast<uint16_t>(wrap ? NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED : 0),
                       __ATOMIC_RELEASE);
      if (++pos == kRing) {
        pos = 0;
        wrap = !wrap;
      }
    }
  };
  PackedInlineDevice(const VringAddrs& tx, const VringAddrs& rx) {
    t.d = reinterpret_cast<npa_vring_packed_desc*>(tx.desc);
    r.d = reinterpret_cast<npa_vring_packed_desc*>(rx.desc);
    reinterpret_cast<npa_vring_packed_desc_event*>(tx.used)->flags = NPA_VRING_PACKED_EVENT_FLAG_DISABLE;
    reinterpret_cast<npa_vring_packed_desc_event*>(rx.used)->flags = NPA_VRING_PACKED_EVENT_FLAG_DISABLE;
  }
  void Step() {
    for (int i = 0; i < 32 && t.Avail(); i++) {
      memcpy(sink, reinterpret_cast<void*>(t.d[t.pos].addr + 12), 64);
      t.Use(0);
    }
    for (int i = 0; i < 32 && r.Avail(); i++) {
      memcpy(reinterpret_cast<void*>(r.d[r.pos].addr), frame, sizeof frame);
      r.Use(sizeof frame);
    }
  }
  Side t, r;
  uint8_t sink[64];
  uint8_t frame[12 + 64] = {};
};

// The driver's halves of one round (see the header comment).
__attribute__((noinline)) uint16_t TxRound(BufPool* pool, TxVirtq* tx, QueueCounters* c) {
  npa_buf* b[32];
  uint16_t n = static_cast<uint16_t>(pool->Alloc(b, 32));
  for (uint16_t i = 0; i < n; i++) b[i]->data_len = b[i]->pkt_len = 64;
  uint16_t s = tx->Burst(b, n, c);
  pool->Free(b + s, n - s);
  return s;
}
__attribute__((noinline)) uint16_t RxRound(BufPool* pool, RxVirtq* rx, QueueCounters* c) {
  npa_buf* b[32];
  uint16_t got = rx->Burst(b, 32, c);
  pool->Free(b, got);
  return got;
}
__attribute__((noinline)) void DriverRound(BufPool* pool, TxVirtq* tx, RxVirtq* rx,
                                           QueueCounters* c, uint64_t* sent, uint64_t* recv) {
  *sent += TxRound(pool, tx, c);
  *recv += RxRound(pool, rx, c);
}

template <typename Dev>
int SingleThread(BufPool* pool, TxVirtq* tx, RxVirtq* rx, uint64_t bursts) {
  QueueCounters c;
  rx->Refill(&c);
  Dev dev(tx->addrs(), rx->addrs());
  uint64_t sent = 0, recv = 0;
  for (uint64_t i = 0; i < bursts; i++) {
    DriverRound(pool, tx, rx, &c, &sent, &recv);
    dev.Step();
  }
  printf("single thread, %s rings: %llu bursts, TX %llu frames, RX %llu frames, pool bad_frees %llu\n",
         tx->packed() ? "packed" : "split", static_cast<unsigned long long>(bursts),
         static_cast<unsigned long long>(sent),
         static_cast<unsigned long long>(recv), static_cast<unsigned long long>(pool->bad_frees()));
  // Every round after the first moves a full burst both ways.
  return sent + 64 >= bursts * 32 && recv + 64 >= bursts * 32 && pool->bad_frees() == 0 ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  const bool st = argc > 2 && strcmp(argv[1], "--st") == 0;
  double secs = argc > 1 ? atof(argv[1]) : 3;
  int cdrv = argc > 3 ? atoi(argv[2]) : 0, cdev = argc > 3 ? atoi(argv[3]) : 1;
  size_t vr = VringBytes(kRing);
  const uint32_t nbuf = 8192;
  auto r = Region::Create(2 * vr + nbuf * NPA_BUF_SLOT_SIZE, true);
  if (!r.ok()) return 1;
  uint8_t* slots = r->base() + 2 * vr;
  BufPool pool;
  if (!pool.Init(slots, nbuf, 0, nbuf, reinterpret_cast<uintptr_t>(slots),
                 reinterpret_cast<uintptr_t>(slots) + nbuf * NPA_BUF_SLOT_SIZE).ok())
    return 1;
  TxVirtq tx;
  RxVirtq rx;
  uint64_t f = 1ull << NPA_VIRTIO_F_VERSION_1;
  const bool packed = st && argc > 3 && strcmp(argv[3], "packed") == 0;
  if (packed) f |= 1ull << NPA_VIRTIO_F_RING_PACKED;
  if (!tx.Init(r->base(), kRing, &pool, f, -1).ok() || !rx.Init(r->base() + vr, kRing, &pool, f, -1).ok())
    return 1;
  if (packed) return SingleThread<PackedInlineDevice>(&pool, &tx, &rx, strtoull(argv[2], nullptr, 10));
  if (st) return SingleThread<InlineDevice>(&pool, &tx, &rx, strtoull(argv[2], nullptr, 10));
  std::atomic<bool> stop{false};
  uint64_t dev_rx = 0;
  QueueCounters c;
  rx.Refill(&c);
  std::thread dev(Device, tx.addrs(), rx.addrs(), &stop, &dev_rx, cdev);
  Pin(cdrv);
  npa_buf* b[32];
  uint64_t sent = 0, recv = 0;
  const uint64_t t0 = npa::MonotonicNs();
  double elapsed;  // seconds
  do {
    for (int it = 0; it < 1000; it++) {
      uint16_t n = static_cast<uint16_t>(pool.Alloc(b, 32));
      for (uint16_t i = 0; i < n; i++) b[i]->data_len = b[i]->pkt_len = 64;
      uint16_t s = tx.Burst(b, n, &c);
      pool.Free(b + s, n - s);
      sent += s;
      uint16_t got = rx.Burst(b, 32, &c);
      pool.Free(b, got);
      recv += got;
    }
    elapsed = static_cast<double>(npa::MonotonicNs() - t0) / 1e9;
  } while (elapsed < secs);
  stop = true;
  dev.join();
  printf("hugepages %d: TX %.2f Mpps, RX %.2f Mpps (64 B, burst 32, ring %u, driver cpu %d, device cpu %d)\n",
         r->hugepages(), sent / elapsed / 1e6, recv / elapsed / 1e6, kRing, cdrv, cdev);
  return 0;
}
