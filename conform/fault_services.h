// conform/fault_services.h — fault injection and DMA accounting as a
// decorator over an npa_services table. npa-conform puts it over the
// production services (shell/vf/vf_services.h, the table the shell hands a
// plug-in), so the plug-in under test sees exactly the shell's services
// except where a case injects a fault.
//
//   shell::VfServices& vf = ...;                   // the production table
//   Violations bad;
//   FaultServices svc(vf.table(), &bad);
//   svc.faults().dma_fail_at = 2;                  // the 3rd dma_alloc fails
//   plugin->ctrl->probe(svc.table(), &info, &dev);
//   ...
//   EXPECT(svc.dma_outstanding() == 0 && bad.count() == 0);
//
// What it changes, per Faults (everything else is forwarded as is, with the
// base table's ctx):
//   dma_alloc  call number dma_fail_at (counted from reset_counters(), every
//              call counts) returns -ENOMEM without reaching the base.
//   buf_alloc  buf_empty: returns 0; buf_max: asks the base for at most
//              buf_max buffers.
//   irq_setup  irq_fail: nvec > 0 returns -EIO without reaching the base
//              (nvec 0, the disable, still goes through).
// What it counts: DMA blocks handed out and not yet freed. A dma_free of a
// NULL block, a zero handle, a handle it never handed out (or already freed)
// or a vaddr that does not match its handle is a violation: recorded in
// `violations` and NOT forwarded, so it never reaches (or corrupts) the base.
//
// Decorators stack: the base may itself be a decorator's table. The base
// table must outlive this object; table() is valid for this object's life.
// Threads: none. The conformance runner drives one queue at a time from one
// thread, so nothing here locks.
#ifndef NPA_CONFORM_FAULT_SERVICES_H_
#define NPA_CONFORM_FAULT_SERVICES_H_

#include <cstdarg>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "npa/plugin.h"

namespace npa::conform {

// Contract violations the harness saw (bad frees), counted; the first 32
// described for the report. Shared by the decorator and the buffer pool.
class Violations {
 public:
  void Add(std::string what) {
    count_++;
    if (log_.size() < 32) log_.push_back(std::move(what));
  }
  int count() const { return count_; }
  const std::vector<std::string>& log() const { return log_; }

 private:
  int count_ = 0;
  std::vector<std::string> log_;
};

struct Faults {
  int64_t dma_fail_at = -1;  // dma_alloc call index (counted from reset_counters) that fails
  uint16_t buf_max = 0;      // buf_alloc hands out at most this many per call (0 = no limit)
  bool buf_empty = false;    // buf_alloc returns 0
  bool irq_fail = false;     // irq_setup with nvec > 0 returns -EIO
};

class FaultServices {
 public:
  // base: the table to decorate; violations: where bad frees are recorded.
  FaultServices(const npa_services* base, Violations* violations);
  FaultServices(const FaultServices&) = delete;
  FaultServices& operator=(const FaultServices&) = delete;

  const npa_services* table() const { return &table_; }
  Faults& faults() { return faults_; }
  void reset_counters() { dma_calls_ = 0; }
  int64_t dma_calls() const { return dma_calls_; }
  // dma_alloc successes not yet given back through dma_free.
  size_t dma_outstanding() const { return dma_live_.size(); }

 private:
  static int BarMap(void* c, uint32_t bar, volatile void** addr, uint64_t* len);
  static int CfgRead(void* c, uint32_t off, uint32_t len, uint32_t* val);
  static int CfgWrite(void* c, uint32_t off, uint32_t len, uint32_t val);
  static int DmaAlloc(void* c, uint64_t size, uint64_t align, npa_dma_mem* out);
  static void DmaFree(void* c, npa_dma_mem* mem);
  static int IrqSetup(void* c, uint32_t nvec, int* efds);
  static uint16_t BufAlloc(void* c, uint16_t qid, npa_buf** b, uint16_t n);
  static void BufFree(void* c, uint16_t qid, npa_buf** b, uint16_t n);
  static void BufFreeTx(void* c, uint16_t qid, npa_buf** b, uint16_t n);
  static void Log(void* c, int level, const char* fmt, va_list ap);
  static uint64_t NowNs(void* c);
  static void SleepUs(void* c, uint32_t us);

  const npa_services* base_;
  Violations* violations_;
  npa_services table_{};
  Faults faults_;
  int64_t dma_calls_ = 0;
  std::map<uint64_t, void*> dma_live_;  // handle -> vaddr, as the base handed them out
};

}  // namespace npa::conform

#endif  // NPA_CONFORM_FAULT_SERVICES_H_
