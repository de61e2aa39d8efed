// tests/conform/conform_services.h — the npa_services table npa-conform hands
// to the plug-in under test: device access through VfioHost, DMA memory from
// a first-fit arena and packet buffers from a slot pool, both inside one
// region mapped at iova == vaddr, plus the fault injection and accounting
// the conformance cases need.
//
//   ConformServices svc(host.get(), region);      // host may be null (no device)
//   svc.faults().dma_fail_at = 2;                 // the 3rd dma_alloc fails
//   plugin->ctrl->probe(svc.table(), &host->info(), &dev);
//   ...
//   EXPECT(svc.bufs_outstanding() == 0 && svc.dma_outstanding() == 0);
//
// Accounting: every buffer given out by buf_alloc must come back through
// buf_free (or be freed by the harness after a burst returned it); a buffer
// freed twice or not from this pool is counted in violations() and ignored,
// never corrupts the pool. The same for dma_free of an unknown block.
// Single-threaded: the conformance runner drives one queue at a time.
#ifndef NPA_TESTS_CONFORM_CONFORM_SERVICES_H_
#define NPA_TESTS_CONFORM_CONFORM_SERVICES_H_

#include <cstdarg>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "npa/plugin.h"
#include "tests/conform/vfio_host.h"

namespace npa::conform {

struct Faults {
  int64_t dma_fail_at = -1;  // dma_alloc call index (counted from reset_counters) that fails
  uint16_t buf_max = 0;      // buf_alloc hands out at most this many per call (0 = no limit)
  bool buf_empty = false;    // buf_alloc returns 0
  bool irq_fail = false;     // irq_setup with nvec > 0 returns -EIO
};

class ConformServices {
 public:
  // region is split: the first dma_bytes for the DMA arena, the rest for
  // buffer slots.
  ConformServices(VfioHost* host, DmaRegion region, uint64_t dma_bytes);
  ConformServices(const ConformServices&) = delete;
  ConformServices& operator=(const ConformServices&) = delete;

  const npa_services* table() const { return &table_; }
  Faults& faults() { return faults_; }
  void reset_counters() { dma_calls_ = 0; }

  // The harness's own buffers (TX frames), from the same pool.
  uint16_t Alloc(npa_buf** b, uint16_t n);
  void Free(npa_buf** b, uint16_t n);

  int bufs_outstanding() const { return bufs_out_; }
  size_t dma_outstanding() const { return dma_live_.size(); }
  uint32_t slots() const { return static_cast<uint32_t>(slots_.size()); }
  int violations() const { return violations_; }
  const std::vector<std::string>& violation_log() const { return violation_log_; }
  const std::vector<int>& irq_fds() const { return irq_fds_; }
  int64_t dma_calls() const { return dma_calls_; }
  // Plug-in log lines go to stderr when verbose.
  bool verbose = false;
  std::vector<std::string> last_logs;  // the most recent 64 lines

 private:
  static int BarMap(void* c, uint32_t bar, volatile void** addr, uint64_t* len);
  static int CfgRead(void* c, uint32_t off, uint32_t len, uint32_t* val);
  static int CfgWrite(void* c, uint32_t off, uint32_t len, uint32_t val);
  static int DmaAlloc(void* c, uint64_t size, uint64_t align, npa_dma_mem* out);
  static void DmaFree(void* c, npa_dma_mem* mem);
  static int IrqSetup(void* c, uint32_t nvec, int* efds);
  static uint16_t BufAlloc(void* c, uint16_t qid, npa_buf** b, uint16_t n);
  static void BufFree(void* c, uint16_t qid, npa_buf** b, uint16_t n);
  static void Log(void* c, int level, const char* fmt, va_list ap);
  static uint64_t NowNs(void* c);
  static void SleepUs(void* c, uint32_t us);
  void Violation(const std::string& what);
  void FreeOne(npa_buf* b);

  VfioHost* host_;
  DmaRegion region_;
  npa_services table_{};
  Faults faults_;
  // DMA arena: offset -> length, free and used.
  uint64_t dma_bytes_;
  std::map<uint64_t, uint64_t> dma_free_, dma_live_;
  int64_t dma_calls_ = 0;
  // Buffer slots.
  std::vector<npa_buf*> slots_;
  std::vector<uint8_t> slot_busy_;
  std::vector<uint32_t> free_stack_;
  int bufs_out_ = 0;
  int violations_ = 0;
  std::vector<std::string> violation_log_;
  std::vector<int> irq_fds_;
};

}  // namespace npa::conform

#endif  // NPA_TESTS_CONFORM_CONFORM_SERVICES_H_
