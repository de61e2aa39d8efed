// Single-thread cost of the device-side ring code per 64-byte frame (no
// cross-core cache traffic: that part is measured by the end-to-end
// benchmark against DPDK). The guest role runs in the same thread and
// re-posts the same descriptors every burst.
//
//   build/tests/bench/virtqueue_bench
//   valgrind --tool=callgrind build/tests/bench/virtqueue_bench
//     --benchmark_filter=Tx --benchmark_min_time=0.01   (instructions/frame)
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "hypervisor/vhost/virtqueue.h"

namespace npa::agent {
namespace {

constexpr uint32_t kNum = 256;
constexpr uint16_t kBurst = 32;

struct Rig {
  std::vector<uint8_t> arena = std::vector<uint8_t>(1 << 20);
  std::shared_ptr<const GuestMemory> mem;
  RingLayout l;
  VirtQueue q;
  uint16_t avail_idx = 0;
  // split: TX chains of two descriptors, the 12-byte header then 64 bytes
  // of frame (the layout a guest that does not prepend the header uses).
  explicit Rig(bool writable, bool split = false) {
    const uint64_t base = reinterpret_cast<uint64_t>(arena.data());
    mem = *GuestMemory::FromRegions({{base, base, arena.size(), arena.data()}});
    l = {kNum, reinterpret_cast<npa_vring_desc*>(arena.data()),
         reinterpret_cast<npa_vring_avail*>(arena.data() + 0x1000),
         reinterpret_cast<npa_vring_used*>(arena.data() + 0x2000)};
    for (uint32_t i = 0; i < kNum; ++i) {
      l.desc[i] = {base + 0x10000 + i * 2048, writable ? 2048u : 76u,
                   static_cast<uint16_t>(writable ? NPA_VRING_DESC_F_WRITE : 0), 0};
    }
    if (split) {
      // Heads are even; each head's header chains to the odd descriptor
      // after it. Post() then uses half the ring's entries.
      for (uint32_t i = 0; i < kNum; i += 2) {
        l.desc[i] = {base + 0x10000 + i * 2048, 12u, NPA_VRING_DESC_F_NEXT,
                     static_cast<uint16_t>(i + 1)};
        l.desc[i + 1] = {base + 0x10000 + (i + 1) * 2048, 64u, 0, 0};
      }
    }
    split_ = split;
    q.Configure(mem, l, 0, true, -1);
  }
  bool split_ = false;
  void Post(uint16_t n) {
    for (uint16_t i = 0; i < n; ++i) {
      const uint16_t slot = (avail_idx + i) & (kNum - 1);
      l.avail->ring[slot] = split_ ? static_cast<uint16_t>((slot * 2) & (kNum - 1)) : slot;
    }
    avail_idx = static_cast<uint16_t>(avail_idx + n);
    __atomic_store_n(&l.avail->idx, avail_idx, __ATOMIC_RELEASE);
  }
};

// Post a burst of 64 B frames, peek and release them (the agent's TX work).
void TxBursts(benchmark::State& state, bool split) {
  Rig r(false, split);
  GuestFrame f[kBurst];
  QueueCounters c{};
  std::string v;
  for (auto _ : state) {
    r.Post(kBurst);
    uint16_t n = r.q.PeekTx(f, kBurst, &c, &v);
    benchmark::DoNotOptimize(f[0].segs[0].iov_base);
    r.q.ReleaseTx(n);
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
}
void BM_Tx64(benchmark::State& state) { TxBursts(state, false); }
BENCHMARK(BM_Tx64);
void BM_Tx64Split(benchmark::State& state) { TxBursts(state, true); }
BENCHMARK(BM_Tx64Split);

// A poll that finds the TX ring empty (idle guest, or one polling faster
// than it sends): per call, not per frame.
void BM_TxEmpty(benchmark::State& state) {
  Rig r(false);
  GuestFrame f[kBurst];
  QueueCounters c{};
  std::string v;
  for (auto _ : state) benchmark::DoNotOptimize(r.q.PeekTx(f, kBurst, &c, &v));
}
BENCHMARK(BM_TxEmpty);

void BM_Rx64(benchmark::State& state) {
  Rig r(true);
  uint8_t pkt[64] = {};
  iovec seg{pkt, sizeof(pkt)};
  PacketRef p[kBurst];
  for (auto& x : p) x = {nullptr, &seg, 1, 64};
  QueueCounters c{};
  std::string v;
  for (auto _ : state) {
    r.Post(kBurst);
    benchmark::DoNotOptimize(r.q.EnqueueRx(p, kBurst, &c, &v));
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
}
BENCHMARK(BM_Rx64);

}  // namespace
}  // namespace npa::agent

BENCHMARK_MAIN();
