// buf_pool_bench: Google Benchmark of the shell's buffer pool (shell/buf_pool.h),
// the per-burst alloc/free that every TX burst of the benchmark guest pays.
//
//   build-bench/tests/bench/buf_pool_bench --benchmark_min_time=0.5
//
// Reported per burst; items/s is buffers per second. A benchmark, not a test:
// nothing here has a threshold.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "shell/buf_pool.h"

namespace {

struct PoolFixture {
  explicit PoolFixture(uint32_t count) : count(count) {
    mem = static_cast<uint8_t*>(aligned_alloc(4096, size_t{count} * NPA_BUF_SLOT_SIZE));
    uintptr_t lo = reinterpret_cast<uintptr_t>(mem);
    ok = mem != nullptr &&
         pool.Init(mem, count, 0, count, lo, lo + size_t{count} * NPA_BUF_SLOT_SIZE).ok();
  }
  ~PoolFixture() { free(mem); }
  uint32_t count;
  uint8_t* mem = nullptr;
  bool ok = false;
  npa::shell::BufPool pool;
};

// Alloc(n) + Free(n): the pool's own cost (LIFO: the same hot slots each time).
void BM_AllocFree(benchmark::State& st) {
  const uint32_t n = static_cast<uint32_t>(st.range(0));
  PoolFixture f(4096);
  if (!f.ok) {
    st.SkipWithError("pool init failed");
    return;
  }
  npa_buf* b[256];
  for (auto _ : st) {
    uint32_t k = f.pool.Alloc(b, n);
    benchmark::DoNotOptimize(b[0]);
    f.pool.Free(b, k);
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * n);
}
BENCHMARK(BM_AllocFree)->Arg(1)->Arg(32)->Arg(256);

// What the TX completion path does: FreeSeg one by one after AllocRaw.
void BM_AllocRawFreeSeg(benchmark::State& st) {
  const uint32_t n = static_cast<uint32_t>(st.range(0));
  PoolFixture f(4096);
  if (!f.ok) {
    st.SkipWithError("pool init failed");
    return;
  }
  npa_buf* b[256];
  for (auto _ : st) {
    uint32_t k = f.pool.AllocRaw(b, n);
    benchmark::DoNotOptimize(b[0]);
    for (uint32_t i = 0; i < k; i++) f.pool.FreeSeg(b[i]);
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * n);
}
BENCHMARK(BM_AllocRawFreeSeg)->Arg(32);

// The benchmark guest's per-burst work without the ring: alloc 32, write the
// 42-byte header and the lengths into each, free. Cycling through a ring's
// worth of buffers (FIFO order, as completions return) instead of the same
// 32 shows the cost when the slots are not all in L1.
void BM_AllocHeaderFree(benchmark::State& st) {
  const uint32_t window = static_cast<uint32_t>(st.range(0));
  PoolFixture f(4096);
  if (!f.ok) {
    st.SkipWithError("pool init failed");
    return;
  }
  uint8_t hdr[42];
  memset(hdr, 0xab, sizeof hdr);
  // Hold window-32 buffers back so each burst gets different slots.
  std::unique_ptr<npa_buf*[]> held(new npa_buf*[window]);
  uint32_t nheld = f.pool.Alloc(held.get(), window);
  uint32_t head = 0;
  npa_buf* b[32];
  for (auto _ : st) {
    uint32_t k = f.pool.Alloc(b, 32);
    for (uint32_t i = 0; i < k; i++) {
      memcpy(npa_buf_data(b[i]), hdr, sizeof hdr);
      b[i]->data_len = 64;
      b[i]->pkt_len = 64;
    }
    benchmark::ClobberMemory();
    if (nheld >= 32) {
      // Rotate: give back the 32 oldest held, hold the 32 just written.
      f.pool.Free(held.get() + head, 32);
      memcpy(held.get() + head, b, sizeof b);
      head = (head + 32) % (nheld - nheld % 32);
    } else {
      f.pool.Free(b, k);
    }
  }
  f.pool.Free(held.get(), nheld);
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations()) * 32);
}
BENCHMARK(BM_AllocHeaderFree)->Arg(0)->Arg(256)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
