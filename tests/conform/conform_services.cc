// tests/conform/conform_services.cc — see conform_services.h.
#include "tests/conform/conform_services.h"

#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace npa::conform {

ConformServices::ConformServices(VfioHost* host, DmaRegion region, uint64_t dma_bytes)
    : host_(host), region_(region), dma_bytes_(dma_bytes & ~4095ull) {
  if (dma_bytes_ > region_.len) dma_bytes_ = region_.len & ~4095ull;
  if (dma_bytes_) dma_free_[0] = dma_bytes_;
  for (uint64_t off = dma_bytes_; off + NPA_BUF_SLOT_SIZE <= region_.len;
       off += NPA_BUF_SLOT_SIZE) {
    slots_.push_back(reinterpret_cast<npa_buf*>(region_.base + off));
  }
  slot_busy_.assign(slots_.size(), 0);
  for (uint32_t i = static_cast<uint32_t>(slots_.size()); i-- > 0;) free_stack_.push_back(i);
  table_.struct_size = sizeof(table_);
  table_.abi_major = NPA_PLUGIN_ABI_MAJOR;
  table_.abi_minor = NPA_PLUGIN_ABI_MINOR;
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
}

void ConformServices::Violation(const std::string& what) {
  violations_++;
  if (violation_log_.size() < 32) violation_log_.push_back(what);
}

int ConformServices::BarMap(void* c, uint32_t bar, volatile void** addr, uint64_t* len) {
  auto* s = static_cast<ConformServices*>(c);
  if (s->host_ == nullptr) return -ENODEV;
  return s->host_->BarMap(bar, addr, len);
}

int ConformServices::CfgRead(void* c, uint32_t off, uint32_t len, uint32_t* val) {
  auto* s = static_cast<ConformServices*>(c);
  if (s->host_ == nullptr) return -ENODEV;
  return s->host_->CfgRead(off, len, val);
}

int ConformServices::CfgWrite(void* c, uint32_t off, uint32_t len, uint32_t val) {
  auto* s = static_cast<ConformServices*>(c);
  if (s->host_ == nullptr) return -ENODEV;
  return s->host_->CfgWrite(off, len, val);
}

int ConformServices::DmaAlloc(void* c, uint64_t size, uint64_t align, npa_dma_mem* out) {
  auto* s = static_cast<ConformServices*>(c);
  if (out == nullptr || size == 0 || align == 0 || (align & (align - 1)) || align > (2u << 20))
    return -EINVAL;
  if (s->dma_calls_++ == s->faults_.dma_fail_at) return -ENOMEM;
  size = (size + 63) & ~63ull;
  for (auto it = s->dma_free_.begin(); it != s->dma_free_.end(); ++it) {
    uint64_t start = (it->first + align - 1) & ~(align - 1);
    uint64_t end = it->first + it->second;
    if (start + size > end) continue;
    uint64_t fo = it->first, fl = it->second;
    s->dma_free_.erase(it);
    if (start > fo) s->dma_free_[fo] = start - fo;
    if (start + size < fo + fl) s->dma_free_[start + size] = fo + fl - start - size;
    s->dma_live_[start] = size;
    uint8_t* p = s->region_.base + start;
    std::memset(p, 0, size);
    out->struct_size = sizeof(*out);
    out->vaddr = p;
    out->iova = reinterpret_cast<uint64_t>(p);
    out->size = size;
    out->handle = start + 1;  // never 0
    return 0;
  }
  return -ENOMEM;
}

void ConformServices::DmaFree(void* c, npa_dma_mem* mem) {
  auto* s = static_cast<ConformServices*>(c);
  if (mem == nullptr || mem->handle == 0) {
    s->Violation("dma_free(NULL or zero handle)");
    return;
  }
  auto it = s->dma_live_.find(mem->handle - 1);
  if (it == s->dma_live_.end()) {
    s->Violation("dma_free of a block not allocated (or freed twice)");
    return;
  }
  uint64_t off = it->first, len = it->second;
  s->dma_live_.erase(it);
  // Coalesce with the neighbours.
  auto next = s->dma_free_.lower_bound(off);
  if (next != s->dma_free_.end() && off + len == next->first) {
    len += next->second;
    s->dma_free_.erase(next);
  }
  auto prev = s->dma_free_.lower_bound(off);
  if (prev != s->dma_free_.begin()) {
    --prev;
    if (prev->first + prev->second == off) {
      prev->second += len;
      return;
    }
  }
  s->dma_free_[off] = len;
}

int ConformServices::IrqSetup(void* c, uint32_t nvec, int* efds) {
  auto* s = static_cast<ConformServices*>(c);
  if (nvec && s->faults_.irq_fail) return -EIO;
  if (s->host_ == nullptr) return nvec ? -EINVAL : 0;
  int rc = s->host_->MsixSetup(nvec, efds);
  s->irq_fds_.clear();
  if (rc == 0)
    for (uint32_t i = 0; i < nvec; i++) s->irq_fds_.push_back(efds[i]);
  return rc;
}

uint16_t ConformServices::Alloc(npa_buf** b, uint16_t n) {
  uint16_t i = 0;
  for (; i < n && !free_stack_.empty(); i++) {
    uint32_t k = free_stack_.back();
    free_stack_.pop_back();
    slot_busy_[k] = 1;
    npa_buf* x = slots_[k];
    std::memset(x, 0, sizeof(*x));
    x->iova = reinterpret_cast<uint64_t>(x);
    x->data_off = NPA_BUF_DATA_OFF;
    x->buf_len = NPA_BUF_SLOT_SIZE;
    x->nb_segs = 1;
    x->slot = k;
    b[i] = x;
  }
  bufs_out_ += i;
  return i;
}

void ConformServices::FreeOne(npa_buf* b) {
  uint8_t* p = reinterpret_cast<uint8_t*>(b);
  if (p < region_.base + dma_bytes_ || p >= region_.base + region_.len ||
      (p - region_.base - dma_bytes_) % NPA_BUF_SLOT_SIZE) {
    Violation("buf_free of a pointer that is not a pool buffer");
    return;
  }
  uint32_t k = static_cast<uint32_t>((p - region_.base - dma_bytes_) / NPA_BUF_SLOT_SIZE);
  if (!slot_busy_[k]) {
    Violation("buf_free of a buffer that is already free");
    return;
  }
  slot_busy_[k] = 0;
  free_stack_.push_back(k);
  bufs_out_--;
}

void ConformServices::Free(npa_buf** b, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    // A frame with all its segments; the segment walk is bounded.
    npa_buf* s = b[i];
    for (int k = 0; s != nullptr && k < 256; k++) {
      npa_buf* nx = s->next;
      FreeOne(s);
      s = nx;
    }
  }
}

uint16_t ConformServices::BufAlloc(void* c, uint16_t, npa_buf** b, uint16_t n) {
  auto* s = static_cast<ConformServices*>(c);
  if (b == nullptr || s->faults_.buf_empty) return 0;
  if (s->faults_.buf_max && n > s->faults_.buf_max) n = s->faults_.buf_max;
  return s->Alloc(b, n);
}

void ConformServices::BufFree(void* c, uint16_t, npa_buf** b, uint16_t n) {
  auto* s = static_cast<ConformServices*>(c);
  if (b == nullptr) return;
  s->Free(b, n);
}

void ConformServices::Log(void* c, int level, const char* fmt, va_list ap) {
  auto* s = static_cast<ConformServices*>(c);
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  static const char* kLevel[] = {"E", "W", "I", "D"};
  if (s->verbose) fprintf(stderr, "  plugin[%s] %s\n", kLevel[level & 3], line);
  if (s->last_logs.size() >= 64) s->last_logs.erase(s->last_logs.begin());
  s->last_logs.push_back(line);
}

uint64_t ConformServices::NowNs(void*) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void ConformServices::SleepUs(void*, uint32_t us) {
  if (us > 1000000) us = 1000000;
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>((us % 1000000) * 1000)};
  nanosleep(&ts, nullptr);
}

}  // namespace npa::conform
