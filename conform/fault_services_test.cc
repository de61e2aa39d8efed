// fault_services_test.cc — the FaultServices decorator over a recording base
// table: what it forwards (with the base's ctx), what it changes per fault,
// what it refuses to forward, and that decorators stack.
#include "conform/fault_services.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa::conform {
namespace {

// A base table that records every call it gets and answers from fixed data.
struct Base {
  std::vector<std::string> calls;
  uint64_t next_handle = 1;
  uint8_t mem[4096] = {};
  npa_services t{};

  static Base* B(void* c) { return static_cast<Base*>(c); }
  Base() {
    t.struct_size = sizeof(t);
    t.abi_major = NPA_PLUGIN_ABI_MAJOR;
    t.abi_minor = NPA_PLUGIN_ABI_MINOR;
    t.ctx = this;
    t.bar_map = [](void* c, uint32_t, volatile void** a, uint64_t* l) {
      B(c)->calls.push_back("bar_map");
      *a = B(c)->mem;
      *l = sizeof(mem);
      return 0;
    };
    t.cfg_read = [](void* c, uint32_t off, uint32_t, uint32_t* v) {
      B(c)->calls.push_back("cfg_read");
      *v = off + 1;
      return 0;
    };
    t.cfg_write = [](void* c, uint32_t, uint32_t, uint32_t) {
      B(c)->calls.push_back("cfg_write");
      return 0;
    };
    t.dma_alloc = [](void* c, uint64_t size, uint64_t, npa_dma_mem* out) {
      B(c)->calls.push_back("dma_alloc");
      out->vaddr = B(c)->mem;
      out->iova = 0x1000;
      out->size = size;
      out->handle = B(c)->next_handle++;
      return 0;
    };
    t.dma_free = [](void* c, npa_dma_mem*) { B(c)->calls.push_back("dma_free"); };
    t.irq_setup = [](void* c, uint32_t nvec, int* efds) {
      B(c)->calls.push_back("irq_setup " + std::to_string(nvec));
      for (uint32_t i = 0; i < nvec; i++) efds[i] = 100 + static_cast<int>(i);
      return 0;
    };
    t.buf_alloc = [](void* c, uint16_t qid, npa_buf**, uint16_t n) {
      B(c)->calls.push_back("buf_alloc " + std::to_string(qid) + " " + std::to_string(n));
      return n;
    };
    t.buf_free = [](void* c, uint16_t, npa_buf**, uint16_t n) {
      B(c)->calls.push_back("buf_free " + std::to_string(n));
    };
    t.log = [](void* c, int level, const char* fmt, va_list ap) {
      char line[64];
      vsnprintf(line, sizeof(line), fmt, ap);
      B(c)->calls.push_back("log " + std::to_string(level) + " " + line);
    };
    t.now_ns = [](void* c) {
      B(c)->calls.push_back("now_ns");
      return uint64_t{42};
    };
    t.sleep_us = [](void* c, uint32_t us) { B(c)->calls.push_back("sleep_us " + std::to_string(us)); };
  }
};

void CallLog(const npa_services* t, int level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  t->log(t->ctx, level, fmt, ap);
  va_end(ap);
}

TEST(ConformFaultServices, ForwardsEverythingWithTheBaseContext) {
  Base base;
  Violations bad;
  FaultServices f(&base.t, &bad);
  const npa_services* t = f.table();
  EXPECT_EQ(t->struct_size, sizeof(npa_services));
  EXPECT_EQ(t->abi_major, NPA_PLUGIN_ABI_MAJOR);
  EXPECT_EQ(t->ctx, &f);
  volatile void* a = nullptr;
  uint64_t l = 0;
  uint32_t v = 0;
  int efd[2] = {-1, -1};
  npa_buf* b[4];
  npa_dma_mem m{};
  EXPECT_EQ(t->bar_map(t->ctx, 0, &a, &l), 0);
  EXPECT_EQ(a, base.mem);
  EXPECT_EQ(t->cfg_read(t->ctx, 7, 4, &v), 0);
  EXPECT_EQ(v, 8u);
  EXPECT_EQ(t->cfg_write(t->ctx, 4, 2, 6), 0);
  EXPECT_EQ(t->dma_alloc(t->ctx, 128, 64, &m), 0);
  t->dma_free(t->ctx, &m);
  EXPECT_EQ(t->irq_setup(t->ctx, 2, efd), 0);
  EXPECT_EQ(efd[1], 101);
  EXPECT_EQ(t->buf_alloc(t->ctx, 1, b, 4), 4);
  t->buf_free(t->ctx, 1, b, 4);
  CallLog(t, NPA_LOG_INFO, "link %s", "up");
  EXPECT_EQ(t->now_ns(t->ctx), 42u);
  t->sleep_us(t->ctx, 10);
  EXPECT_EQ(base.calls, (std::vector<std::string>{"bar_map", "cfg_read", "cfg_write", "dma_alloc",
                                                  "dma_free", "irq_setup 2", "buf_alloc 1 4",
                                                  "buf_free 4", "log 2 link up", "now_ns",
                                                  "sleep_us 10"}));
  EXPECT_EQ(bad.count(), 0);
  EXPECT_EQ(f.dma_outstanding(), 0u);
}

TEST(ConformFaultServices, FailsTheNthDmaAllocWithoutReachingTheBase) {
  Base base;
  Violations bad;
  FaultServices f(&base.t, &bad);
  const npa_services* t = f.table();
  f.faults().dma_fail_at = 1;
  npa_dma_mem m[3] = {};
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m[0]), 0);
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m[1]), -ENOMEM);
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m[2]), 0);
  EXPECT_EQ(f.dma_calls(), 3);
  EXPECT_EQ(f.dma_outstanding(), 2u);
  EXPECT_EQ(base.calls, (std::vector<std::string>{"dma_alloc", "dma_alloc"}));
  f.reset_counters();
  EXPECT_EQ(f.dma_calls(), 0);
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m[1]), 0);  // call 0 again
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m[1]), -ENOMEM);
}

TEST(ConformFaultServices, BadDmaFreesAreViolationsAndNeverForwarded) {
  Base base;
  Violations bad;
  FaultServices f(&base.t, &bad);
  const npa_services* t = f.table();
  npa_dma_mem m{};
  ASSERT_EQ(t->dma_alloc(t->ctx, 64, 64, &m), 0);
  npa_dma_mem wrong_vaddr = m;
  wrong_vaddr.vaddr = base.mem + 64;
  t->dma_free(t->ctx, &wrong_vaddr);
  t->dma_free(t->ctx, nullptr);
  npa_dma_mem zero{};
  t->dma_free(t->ctx, &zero);
  t->dma_free(t->ctx, &m);
  t->dma_free(t->ctx, &m);  // the base does not clear it: the handle is now unknown
  EXPECT_EQ(bad.count(), 4);
  ASSERT_EQ(bad.log().size(), 4u);
  EXPECT_EQ(bad.log()[0], "dma_free with a vaddr that is not its handle's");
  EXPECT_EQ(bad.log()[1], "dma_free(NULL or zero handle)");
  EXPECT_EQ(bad.log()[3], "dma_free of a block not allocated (or freed twice)");
  EXPECT_EQ(base.calls, (std::vector<std::string>{"dma_alloc", "dma_free"}));
  EXPECT_EQ(f.dma_outstanding(), 0u);
}

TEST(ConformFaultServices, BufferAndIrqFaults) {
  Base base;
  Violations bad;
  FaultServices f(&base.t, &bad);
  const npa_services* t = f.table();
  npa_buf* b[8];
  int efd[2];
  f.faults().buf_max = 3;
  EXPECT_EQ(t->buf_alloc(t->ctx, 0, b, 8), 3);
  EXPECT_EQ(t->buf_alloc(t->ctx, 0, b, 2), 2);
  f.faults().buf_empty = true;
  EXPECT_EQ(t->buf_alloc(t->ctx, 0, b, 8), 0);
  f.faults().irq_fail = true;
  EXPECT_EQ(t->irq_setup(t->ctx, 2, efd), -EIO);
  EXPECT_EQ(t->irq_setup(t->ctx, 0, nullptr), 0);  // the disable still goes through
  EXPECT_EQ(base.calls, (std::vector<std::string>{"buf_alloc 0 3", "buf_alloc 0 2", "irq_setup 0"}));
}

TEST(ConformFaultServices, DecoratorsStack) {
  Base base;
  Violations bad;
  FaultServices inner(&base.t, &bad);
  FaultServices outer(inner.table(), &bad);
  const npa_services* t = outer.table();
  inner.faults().buf_max = 2;
  outer.faults().dma_fail_at = 0;
  npa_buf* b[8];
  npa_dma_mem m{};
  EXPECT_EQ(t->buf_alloc(t->ctx, 0, b, 8), 2);
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m), -ENOMEM);
  EXPECT_EQ(t->dma_alloc(t->ctx, 64, 64, &m), 0);
  EXPECT_EQ(inner.dma_calls(), 1);
  EXPECT_EQ(outer.dma_calls(), 2);
  t->dma_free(t->ctx, &m);
  EXPECT_EQ(inner.dma_outstanding(), 0u);
  EXPECT_EQ(outer.dma_outstanding(), 0u);
  EXPECT_EQ(bad.count(), 0);
}

}  // namespace
}  // namespace npa::conform
