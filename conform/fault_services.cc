// conform/fault_services.cc — see fault_services.h.
#include "conform/fault_services.h"

#include <cerrno>

namespace npa::conform {
namespace {

FaultServices* Self(void* c) { return static_cast<FaultServices*>(c); }

}  // namespace

FaultServices::FaultServices(const npa_services* base, Violations* violations)
    : base_(base), violations_(violations) {
  // The plug-in sees the base's ABI version; only ctx and the entries change.
  table_.struct_size = sizeof(table_);
  table_.abi_major = base->abi_major;
  table_.abi_minor = base->abi_minor;
  table_.ctx = this;
  table_.bar_map = BarMap;
  table_.cfg_read = CfgRead;
  table_.cfg_write = CfgWrite;
  table_.dma_alloc = DmaAlloc;
  table_.dma_free = DmaFree;
  table_.irq_setup = IrqSetup;
  table_.buf_alloc = BufAlloc;
  table_.buf_free = BufFree;
  table_.log = Log;
  table_.now_ns = NowNs;
  table_.sleep_us = SleepUs;
  table_.buf_free_tx = BufFreeTx;
}

// ------------------------------------------------------ forwarded as is

int FaultServices::BarMap(void* c, uint32_t bar, volatile void** addr, uint64_t* len) {
  const npa_services* b = Self(c)->base_;
  return b->bar_map(b->ctx, bar, addr, len);
}

int FaultServices::CfgRead(void* c, uint32_t off, uint32_t len, uint32_t* val) {
  const npa_services* b = Self(c)->base_;
  return b->cfg_read(b->ctx, off, len, val);
}

int FaultServices::CfgWrite(void* c, uint32_t off, uint32_t len, uint32_t val) {
  const npa_services* b = Self(c)->base_;
  return b->cfg_write(b->ctx, off, len, val);
}

void FaultServices::BufFree(void* c, uint16_t qid, npa_buf** bufs, uint16_t n) {
  const npa_services* b = Self(c)->base_;
  b->buf_free(b->ctx, qid, bufs, n);
}

void FaultServices::BufFreeTx(void* c, uint16_t qid, npa_buf** bufs, uint16_t n) {
  const npa_services* b = Self(c)->base_;
  npa_services_tx_free(b)(b->ctx, qid, bufs, n);
}

void FaultServices::Log(void* c, int level, const char* fmt, va_list ap) {
  const npa_services* b = Self(c)->base_;
  b->log(b->ctx, level, fmt, ap);
}

uint64_t FaultServices::NowNs(void* c) {
  const npa_services* b = Self(c)->base_;
  return b->now_ns(b->ctx);
}

void FaultServices::SleepUs(void* c, uint32_t us) {
  const npa_services* b = Self(c)->base_;
  b->sleep_us(b->ctx, us);
}

// ------------------------------------------------ faults and accounting

int FaultServices::DmaAlloc(void* c, uint64_t size, uint64_t align, npa_dma_mem* out) {
  FaultServices* s = Self(c);
  if (s->dma_calls_++ == s->faults_.dma_fail_at) return -ENOMEM;
  const npa_services* b = s->base_;
  int rc = b->dma_alloc(b->ctx, size, align, out);
  if (rc == 0) s->dma_live_[out->handle] = out->vaddr;
  return rc;
}

void FaultServices::DmaFree(void* c, npa_dma_mem* mem) {
  FaultServices* s = Self(c);
  if (mem == nullptr || mem->handle == 0) {
    s->violations_->Add("dma_free(NULL or zero handle)");
    return;
  }
  auto it = s->dma_live_.find(mem->handle);
  if (it == s->dma_live_.end()) {
    s->violations_->Add("dma_free of a block not allocated (or freed twice)");
    return;
  }
  if (it->second != mem->vaddr) {
    s->violations_->Add("dma_free with a vaddr that is not its handle's");
    return;
  }
  s->dma_live_.erase(it);
  const npa_services* b = s->base_;
  b->dma_free(b->ctx, mem);
}

int FaultServices::IrqSetup(void* c, uint32_t nvec, int* efds) {
  FaultServices* s = Self(c);
  if (nvec > 0 && s->faults_.irq_fail) return -EIO;
  const npa_services* b = s->base_;
  return b->irq_setup(b->ctx, nvec, efds);
}

uint16_t FaultServices::BufAlloc(void* c, uint16_t qid, npa_buf** bufs, uint16_t n) {
  FaultServices* s = Self(c);
  if (s->faults_.buf_empty) return 0;
  if (s->faults_.buf_max != 0 && n > s->faults_.buf_max) n = s->faults_.buf_max;
  const npa_services* b = s->base_;
  return b->buf_alloc(b->ctx, qid, bufs, n);
}

}  // namespace npa::conform
