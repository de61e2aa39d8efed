/*
 * npa/testing/plugin_testkit.h — a fake services table (npa_services,
 * npa/plugin.h) for unit tests of a plug-in, without VFIO, a device or the
 * shell. Header-only C++17; it needs npa/plugin.h, the C++ standard library
 * and libc (eventfd, dlopen), and no test framework: it counts, the test
 * asserts.
 *
 * Usage (GoogleTest here; any framework works the same way):
 *
 *   #include "npa/testing/plugin_testkit.h"
 *
 *   npa::testkit::FakeServices kit;               // 512 buffers, 64 MB of DMA
 *   kit.SetIdentity(0x8086, 0x10d3);              // device info + config space
 *   uint8_t* bar0 = kit.AddBar(0, 0x20000);       // BAR0: zeroed memory
 *   kit.on_sleep = [&](uint32_t) { MyDeviceModel(bar0); };  // the "hardware"
 *
 *   std::string why;
 *   auto so = npa::testkit::PluginObject::Open("build/plugins/npa_plugin_foo.so", &why);
 *   ASSERT_TRUE(so) << why;
 *   const npa_plugin_ctrl_ops* c = so->ctrl();
 *   npa_plugin_dev* dev = nullptr;
 *   ASSERT_EQ(c->probe(kit.services(), &kit.device_info(), &dev), 0);
 *   ... get_caps, configure, start, bursts, stop ...
 *   EXPECT_EQ(kit.buffers_outstanding(), 0u);      // stop handed every buffer back
 *   c->remove(dev);
 *   EXPECT_EQ(kit.dma_outstanding(), 0u);          // remove freed every DMA block
 *   EXPECT_EQ(kit.double_frees(), 0u);
 *
 * What each service does here (the production table is
 * shell/vf/vf_services.h; the argument checks are the same):
 *   bar_map      memory the test added with AddBar (page aligned, zeroed);
 *                SetBarMapLength() makes it report a shorter length.
 *                -EINVAL for a BAR never added.
 *   cfg_read/    config_size() bytes of config space in memory; len 1, 2 or
 *   cfg_write    4, inside the space, and (write) a value that fits in len
 *                bytes, else -EINVAL. Writes are stored, then on_config_write
 *                runs.
 *   dma_alloc/   one heap block per call (not a sub-allocated arena: a block
 *   dma_free     of its own lets AddressSanitizer catch a ring overrun), IOVA
 *                == virtual address, zero-filled, size rounded up to 64
 *                bytes, align a power of two <= 2 MB. -ENOMEM past
 *                Options::dma_limit bytes or on the call FailDmaAllocAt()
 *                names. A handle never handed out counts in bad_dma_frees().
 *   irq_setup    real eventfds, owned by the kit (FireIrq() signals one);
 *                nvec above device_info().msix_vectors: -EINVAL; nvec 0
 *                closes them. on_irq_setup runs first and may fail the call.
 *   buf_alloc/   one LIFO pool of Options::buffers slots laid out like the
 *   buf_free,    shell's (buf.h: iova == address, buf_len NPA_BUF_SLOT_SIZE),
 *   buf_free_tx  shared by every qid < Options::queues. Alloc resets the
 *                header as npa_buf_alloc does; SetBufAllocLimit() makes it
 *                answer short. Free takes frame heads and frees every segment
 *                (bounded walk); a pointer that is not a slot is kept in
 *                foreign_frees() and never pooled, a slot already free counts
 *                in double_frees().
 *   log          captured as lines (logs(), Logged()); echoed to stderr
 *                with echo_logs.
 *   now_ns/      a fake clock: now_ns() reads it, sleep_us(us) advances it by
 *   sleep_us     exactly us and then runs on_sleep(us), where a test's device
 *                model can move (reset bits self-clear, link comes up...).
 *                A plug-in's bounded waits therefore end in no real time.
 *
 * Threads: every entry of the table locks one mutex around the kit's own
 * state, so bursts on several threads are safe; the hooks run without it. The
 * accessors (Reg, counters) are for the test thread between calls.
 *
 * Lifetime: the kit owns every BAR, config space, DMA block, buffer and
 * eventfd it handed out and frees them in its destructor, whatever the
 * plug-in leaked (the counters say what that was). It must outlive the
 * plug-in's device: call remove first. Neither copyable nor movable (the
 * table's ctx points at it).
 */
#ifndef NPA_TESTING_PLUGIN_TESTKIT_H_
#define NPA_TESTING_PLUGIN_TESTKIT_H_

#include <dlfcn.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "npa/plugin.h"

namespace npa::testkit {

class FakeServices {
 public:
  struct Options {
    uint32_t buffers = 512;            // packet buffer slots in the pool
    uint16_t queues = 16;              // buf_alloc/buf_free accept qid < queues
    uint64_t dma_limit = 64ull << 20;  // bytes dma_alloc hands out before -ENOMEM
    uint32_t config_size = 256;        // 256 (conventional) or 4096 (extended)
    uint64_t clock_start_ns = 1000000000ull;
  };

  FakeServices() : FakeServices(Options()) {}
  explicit FakeServices(const Options& o) : opts_(o), config_(o.config_size, 0) {
    opts_.buffers = opts_.buffers == 0 ? 1 : opts_.buffers;
    clock_ns_ = o.clock_start_ns;
    const size_t bytes = RoundUp(size_t{opts_.buffers} * NPA_BUF_SLOT_SIZE, 4096);
    slab_ = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
    if (slab_ == nullptr) std::abort();  // a test host without memory: nothing to report
    std::memset(slab_, 0, bytes);
    slot_free_.assign(opts_.buffers, true);
    free_.reserve(opts_.buffers);
    // Pushed in reverse so that the first allocation hands out slot 0.
    for (uint32_t i = opts_.buffers; i-- > 0;) {
      npa_buf* b = Slot(i);
      b->iova = reinterpret_cast<uintptr_t>(b);
      b->buf_len = NPA_BUF_SLOT_SIZE;
      b->data_off = NPA_BUF_DATA_OFF;
      b->nb_segs = 1;
      b->slot = i;
      free_.push_back(b);
    }
    info_.struct_size = sizeof(info_);
    info_.class_code = 0x020000;  // Ethernet controller
    std::snprintf(info_.pci_address, sizeof(info_.pci_address), "0000:00:04.0");
    table_.struct_size = sizeof(table_);
    table_.abi_major = NPA_PLUGIN_ABI_MAJOR;
    table_.abi_minor = NPA_PLUGIN_ABI_MINOR;
    table_.ctx = this;
    table_.bar_map = &BarMapFn;
    table_.cfg_read = &CfgReadFn;
    table_.cfg_write = &CfgWriteFn;
    table_.dma_alloc = &DmaAllocFn;
    table_.dma_free = &DmaFreeFn;
    table_.irq_setup = &IrqSetupFn;
    table_.buf_alloc = &BufAllocFn;
    table_.buf_free = &BufFreeFn;
    table_.buf_free_tx = &BufFreeFn;  // ABI 1.1: TX completions, accounted alike
    table_.log = &LogFn;
    table_.now_ns = &NowNsFn;
    table_.sleep_us = &SleepUsFn;
  }
  FakeServices(const FakeServices&) = delete;
  FakeServices& operator=(const FakeServices&) = delete;
  ~FakeServices() {
    CloseEventfds();
    for (auto& [h, m] : dma_) std::free(m.vaddr);
    for (auto& [i, b] : bars_) std::free(b.mem);
    std::free(slab_);
  }

  // The table to pass to probe. Valid while the kit lives; a test may edit
  // the mutable one (e.g. NULL a service) to check the plug-in refuses it.
  const npa_services* services() const { return &table_; }
  npa_services* mutable_services() { return &table_; }

  // ---- device identity --------------------------------------------------
  // What probe receives. struct_size, class 0x020000 and pci_address
  // "0000:00:04.0" are preset; AddBar sets num_bars_mappable bits.
  npa_device_info& device_info() { return info_; }
  // Vendor/device (and subsystem, class) into both device_info() and config
  // space, where a plug-in re-reads them.
  void SetIdentity(uint16_t vendor, uint16_t device, uint16_t subsystem_vendor = 0,
                   uint16_t subsystem_device = 0, uint32_t class_code = 0x020000) {
    info_.vendor = vendor;
    info_.device = device;
    info_.subsystem_vendor = subsystem_vendor;
    info_.subsystem_device = subsystem_device;
    info_.class_code = class_code;
    SetConfig<uint16_t>(0x00, vendor);
    SetConfig<uint16_t>(0x02, device);
    SetConfig<uint32_t>(0x08, (class_code << 8) | info_.revision);
    SetConfig<uint16_t>(0x2c, subsystem_vendor);
    SetConfig<uint16_t>(0x2e, subsystem_device);
  }

  // ---- BARs -------------------------------------------------------------
  // Zeroed, 4096-aligned memory for BAR index (0..5), size bytes (rounded up
  // to a page); replaces an earlier one. The returned pointer stays valid.
  uint8_t* AddBar(uint32_t index, uint64_t size) {
    if (index > 5 || size == 0) return nullptr;
    const size_t bytes = RoundUp(static_cast<size_t>(size), 4096);
    auto* mem = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
    if (mem == nullptr) return nullptr;
    std::memset(mem, 0, bytes);
    Bar& b = bars_[index];
    std::free(b.mem);
    b = Bar{mem, size, size};
    info_.num_bars_mappable |= 1u << index;
    return mem;
  }
  uint8_t* bar(uint32_t index) {
    auto it = bars_.find(index);
    return it == bars_.end() ? nullptr : it->second.mem;
  }
  // The length bar_map reports (a BAR shorter than the plug-in needs).
  void SetBarMapLength(uint32_t index, uint64_t len) {
    auto it = bars_.find(index);
    if (it != bars_.end()) it->second.map_len = len;
  }
  // A register of BAR index at byte offset off, as the device model sees it.
  template <typename T>
  T& Reg(uint32_t index, uint64_t off) {
    return *reinterpret_cast<T*>(bar(index) + off);
  }

  // ---- config space -----------------------------------------------------
  uint32_t config_size() const { return static_cast<uint32_t>(config_.size()); }
  uint8_t* config() { return config_.data(); }
  template <typename T>
  T Config(uint32_t off) const {
    T v{};
    if (off + sizeof(T) <= config_.size()) std::memcpy(&v, config_.data() + off, sizeof(T));
    return v;
  }
  template <typename T>
  void SetConfig(uint32_t off, T v) {
    if (off + sizeof(T) <= config_.size()) std::memcpy(config_.data() + off, &v, sizeof(T));
  }

  // ---- DMA --------------------------------------------------------------
  // Live blocks in allocation order (a test finds the rings in them).
  std::vector<npa_dma_mem> dma_blocks() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<npa_dma_mem> v;
    for (auto& [h, m] : dma_) v.push_back(m);
    return v;
  }
  size_t dma_outstanding() const {
    std::lock_guard<std::mutex> l(mu_);
    return dma_.size();
  }
  uint64_t dma_bytes_outstanding() const {
    std::lock_guard<std::mutex> l(mu_);
    return dma_bytes_;
  }
  uint64_t dma_alloc_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return dma_calls_;
  }
  uint64_t bad_dma_frees() const {
    std::lock_guard<std::mutex> l(mu_);
    return bad_dma_frees_;
  }
  // The call with this 0-based index (counting every dma_alloc so far)
  // fails with -ENOMEM; -1 disarms.
  void FailDmaAllocAt(int64_t call) {
    std::lock_guard<std::mutex> l(mu_);
    dma_fail_at_ = call;
  }

  // ---- interrupts -------------------------------------------------------
  size_t irq_vectors() const { return efds_.size(); }
  const std::vector<int>& irq_eventfds() const { return efds_; }
  // Signal vector vec's eventfd as the device's MSI-X message would.
  bool FireIrq(uint32_t vec) {
    if (vec >= efds_.size()) return false;
    uint64_t one = 1;
    return ::write(efds_[vec], &one, sizeof one) == sizeof one;
  }

  // ---- buffers ----------------------------------------------------------
  uint32_t buffer_count() const { return opts_.buffers; }
  uint32_t buffers_outstanding() const {
    std::lock_guard<std::mutex> l(mu_);
    return opts_.buffers - static_cast<uint32_t>(free_.size());
  }
  uint64_t double_frees() const {
    std::lock_guard<std::mutex> l(mu_);
    return double_frees_;
  }
  // Pointers buf_free got that are not slots of this pool, in order.
  std::vector<npa_buf*> foreign_frees() const {
    std::lock_guard<std::mutex> l(mu_);
    return foreign_;
  }
  // buf_alloc/buf_free calls with a qid >= Options::queues or NULL bufs.
  uint64_t bad_buffer_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return bad_buf_calls_;
  }
  // At most this many buffers per buf_alloc call (0: no limit).
  void SetBufAllocLimit(uint16_t n) {
    std::lock_guard<std::mutex> l(mu_);
    buf_limit_ = n;
  }
  bool OwnsBuffer(const npa_buf* b) const { return SlotIndex(b) >= 0; }
  // The test's side of the pool: the same code as the services.
  uint16_t AllocBuffers(uint16_t qid, npa_buf** bufs, uint16_t n) {
    return BufAllocFn(this, qid, bufs, n);
  }
  void FreeBuffers(uint16_t qid, npa_buf** bufs, uint16_t n) { BufFreeFn(this, qid, bufs, n); }
  // One single-segment frame of len bytes, each byte = fill; NULL when the
  // pool is empty or len exceeds the data room.
  npa_buf* AllocFrame(uint16_t qid, uint16_t len, uint8_t fill) {
    npa_buf* b = nullptr;
    if (len > NPA_BUF_DATA_ROOM || AllocBuffers(qid, &b, 1) != 1) return nullptr;
    std::memset(npa_buf_data(b), fill, len);
    b->data_len = len;
    b->pkt_len = len;
    return b;
  }

  // ---- log --------------------------------------------------------------
  std::vector<std::string> logs() const {
    std::lock_guard<std::mutex> l(mu_);
    return logs_;
  }
  std::vector<int> log_levels() const {
    std::lock_guard<std::mutex> l(mu_);
    return log_levels_;
  }
  bool Logged(const std::string& needle) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const std::string& s : logs_)
      if (s.find(needle) != std::string::npos) return true;
    return false;
  }
  void ClearLogs() {
    std::lock_guard<std::mutex> l(mu_);
    logs_.clear();
    log_levels_.clear();
  }
  bool echo_logs = false;

  // ---- time -------------------------------------------------------------
  uint64_t now_ns() const { return clock_ns_.load(); }
  void AdvanceClock(uint64_t ns) { clock_ns_ += ns; }
  uint64_t sleep_calls() const { return sleep_calls_.load(); }

  // ---- hooks: the test's device model -----------------------------------
  // After every sleep_us, with the clock already advanced.
  std::function<void(uint32_t us)> on_sleep;
  // After a config write was stored.
  std::function<void(uint32_t off, uint32_t len, uint32_t val)> on_config_write;
  // Before irq_setup does anything: a non-zero return fails the call with it.
  std::function<int(uint32_t nvec)> on_irq_setup;

 private:
  struct Bar {
    uint8_t* mem = nullptr;
    uint64_t size = 0;
    uint64_t map_len = 0;
  };

  static size_t RoundUp(size_t v, size_t a) { return (v + a - 1) / a * a; }
  static FakeServices* Self(void* ctx) { return static_cast<FakeServices*>(ctx); }
  npa_buf* Slot(uint32_t i) const {
    return reinterpret_cast<npa_buf*>(slab_ + size_t{i} * NPA_BUF_SLOT_SIZE);
  }
  int64_t SlotIndex(const npa_buf* b) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(b), lo = reinterpret_cast<uintptr_t>(slab_);
    if (a < lo || (a - lo) % NPA_BUF_SLOT_SIZE != 0) return -1;
    const uintptr_t i = (a - lo) / NPA_BUF_SLOT_SIZE;
    return i < opts_.buffers ? static_cast<int64_t>(i) : -1;
  }
  void CloseEventfds() {
    for (int fd : efds_) ::close(fd);
    efds_.clear();
  }

  static int BarMapFn(void* ctx, uint32_t bar, volatile void** addr, uint64_t* len) {
    FakeServices* s = Self(ctx);
    auto it = s->bars_.find(bar);
    if (addr == nullptr || len == nullptr || it == s->bars_.end()) return -EINVAL;
    *addr = it->second.mem;
    *len = it->second.map_len;
    return 0;
  }
  static int CfgReadFn(void* ctx, uint32_t off, uint32_t len, uint32_t* val) {
    FakeServices* s = Self(ctx);
    if (val == nullptr || (len != 1 && len != 2 && len != 4) ||
        uint64_t{off} + len > s->config_.size())
      return -EINVAL;
    uint32_t v = 0;  // little-endian: the low len bytes hold the value
    std::memcpy(&v, s->config_.data() + off, len);
    *val = v;
    return 0;
  }
  static int CfgWriteFn(void* ctx, uint32_t off, uint32_t len, uint32_t val) {
    FakeServices* s = Self(ctx);
    if ((len != 1 && len != 2 && len != 4) || uint64_t{off} + len > s->config_.size() ||
        (len < 4 && (val >> (8 * len)) != 0))
      return -EINVAL;
    std::memcpy(s->config_.data() + off, &val, len);
    if (s->on_config_write) s->on_config_write(off, len, val);
    return 0;
  }
  static int DmaAllocFn(void* ctx, uint64_t size, uint64_t align, npa_dma_mem* out) {
    FakeServices* s = Self(ctx);
    std::lock_guard<std::mutex> l(s->mu_);
    const int64_t call = static_cast<int64_t>(s->dma_calls_++);
    if (out == nullptr || size == 0 || align == 0 || (align & (align - 1)) != 0 ||
        align > (2u << 20))
      return -EINVAL;
    // Cache-line rounding, as the shell's arena does.
    const uint64_t want = (size + 63) & ~uint64_t{63};
    if (call == s->dma_fail_at_ || s->dma_bytes_ + want > s->opts_.dma_limit) return -ENOMEM;
    const uint64_t a = align < 64 ? 64 : align;
    void* p = std::aligned_alloc(a, RoundUp(want, a));
    if (p == nullptr) return -ENOMEM;
    std::memset(p, 0, want);
    npa_dma_mem m{};
    m.struct_size = sizeof(m);
    m.vaddr = p;
    m.iova = reinterpret_cast<uintptr_t>(p);
    m.size = want;
    m.handle = s->next_handle_++;
    s->dma_[m.handle] = m;
    s->dma_bytes_ += want;
    *out = m;
    return 0;
  }
  static void DmaFreeFn(void* ctx, npa_dma_mem* mem) {
    FakeServices* s = Self(ctx);
    if (mem == nullptr) return;
    std::lock_guard<std::mutex> l(s->mu_);
    auto it = s->dma_.find(mem->handle);
    if (it == s->dma_.end() || it->second.vaddr != mem->vaddr) {
      s->bad_dma_frees_++;
      return;
    }
    s->dma_bytes_ -= it->second.size;
    std::free(it->second.vaddr);
    s->dma_.erase(it);
    std::memset(mem, 0, sizeof(*mem));
  }
  static int IrqSetupFn(void* ctx, uint32_t nvec, int* efds) {
    FakeServices* s = Self(ctx);
    if (s->on_irq_setup) {
      int rc = s->on_irq_setup(nvec);
      if (rc != 0) return rc;
    }
    std::lock_guard<std::mutex> l(s->mu_);
    if ((nvec > 0 && efds == nullptr) || nvec > s->info_.msix_vectors) return -EINVAL;
    s->CloseEventfds();
    for (uint32_t i = 0; i < nvec; i++) {
      int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        s->CloseEventfds();
        return -err;
      }
      s->efds_.push_back(fd);
      efds[i] = fd;
    }
    return 0;
  }
  static uint16_t BufAllocFn(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n) {
    FakeServices* s = Self(ctx);
    std::lock_guard<std::mutex> l(s->mu_);
    if (bufs == nullptr || qid >= s->opts_.queues) {
      s->bad_buf_calls_++;
      return 0;
    }
    if (s->buf_limit_ != 0 && n > s->buf_limit_) n = s->buf_limit_;
    uint16_t k = 0;
    for (; k < n && !s->free_.empty(); k++) {
      npa_buf* b = s->free_.back();
      s->free_.pop_back();
      s->slot_free_[static_cast<size_t>(s->SlotIndex(b))] = false;
      // What npa_buf_alloc resets (shell/buf_pool.h ResetHeader).
      b->next = nullptr;
      b->pkt_len = 0;
      b->data_len = 0;
      b->data_off = NPA_BUF_DATA_OFF;
      b->nb_segs = 1;
      b->ol_flags = 0;
      bufs[k] = b;
    }
    return k;
  }
  static void BufFreeFn(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n) {
    FakeServices* s = Self(ctx);
    std::lock_guard<std::mutex> l(s->mu_);
    if ((bufs == nullptr && n != 0) || qid >= s->opts_.queues) {
      s->bad_buf_calls_++;
      return;
    }
    for (uint16_t i = 0; i < n; i++) {
      // Every segment of the frame; a chain cannot be longer than the pool,
      // so a cyclic next pointer cannot loop forever.
      npa_buf* b = bufs[i];
      for (uint32_t guard = 0; b != nullptr && guard <= s->opts_.buffers; guard++) {
        npa_buf* next = b->next;
        const int64_t idx = s->SlotIndex(b);
        if (idx < 0) {
          s->foreign_.push_back(b);
        } else if (s->slot_free_[static_cast<size_t>(idx)]) {
          s->double_frees_++;
          break;  // a free slot's next is stale
        } else {
          s->slot_free_[static_cast<size_t>(idx)] = true;
          s->free_.push_back(b);
        }
        b = next;
      }
    }
  }
  static void LogFn(void* ctx, int level, const char* fmt, va_list ap) {
    FakeServices* s = Self(ctx);
    if (fmt == nullptr) return;
    char line[512];
    std::vsnprintf(line, sizeof(line), fmt, ap);
    std::lock_guard<std::mutex> l(s->mu_);
    if (s->echo_logs) std::fprintf(stderr, "plug-in [%d]: %s\n", level, line);
    s->logs_.emplace_back(line);
    s->log_levels_.push_back(level);
  }
  static uint64_t NowNsFn(void* ctx) { return Self(ctx)->clock_ns_.load(); }
  static void SleepUsFn(void* ctx, uint32_t us) {
    FakeServices* s = Self(ctx);
    if (us > 1000000) us = 1000000;  // the shell clamps sleeps to 1 s
    s->clock_ns_ += uint64_t{us} * 1000u;
    s->sleep_calls_++;
    if (s->on_sleep) s->on_sleep(us);
  }

  Options opts_;
  mutable std::mutex mu_;
  npa_services table_{};
  npa_device_info info_{};
  std::map<uint32_t, Bar> bars_;
  std::vector<uint8_t> config_;
  // DMA, by handle (handles rise, so the map is in allocation order).
  std::map<uint64_t, npa_dma_mem> dma_;
  uint64_t next_handle_ = 1, dma_bytes_ = 0, dma_calls_ = 0, bad_dma_frees_ = 0;
  int64_t dma_fail_at_ = -1;
  std::vector<int> efds_;
  uint8_t* slab_ = nullptr;
  std::vector<npa_buf*> free_;    // LIFO, like the shell's pools
  std::vector<bool> slot_free_;
  std::vector<npa_buf*> foreign_;
  uint64_t double_frees_ = 0, bad_buf_calls_ = 0;
  uint16_t buf_limit_ = 0;
  std::vector<std::string> logs_;
  std::vector<int> log_levels_;
  std::atomic<uint64_t> clock_ns_{0}, sleep_calls_{0};
};

// A plug-in shared object opened the way the shell opens it:
// dlopen(RTLD_NOW | RTLD_LOCAL), dlsym(NPA_PLUGIN_ENTRY_NAME), one call of the
// entry with this header's ABI version. It does not apply the shell's checks
// (sizes, names, mandatory ops): a test that wants them links the shell's
// loader (shell/vf/plugin_loader.h) instead. dlclose in the destructor.
class PluginObject {
 public:
  // NULL with *error set when the object cannot be opened, lacks the entry
  // or the entry refuses this ABI version.
  static std::unique_ptr<PluginObject> Open(const std::string& path, std::string* error) {
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      if (error) *error = std::string("dlopen: ") + (e ? e : "unknown error");
      return nullptr;
    }
    std::unique_ptr<PluginObject> p(new PluginObject(h));
    void* sym = ::dlsym(h, NPA_PLUGIN_ENTRY_NAME);
    if (sym == nullptr) {
      if (error) *error = path + " does not export " NPA_PLUGIN_ENTRY_NAME;
      return nullptr;
    }
    p->entry_ = reinterpret_cast<npa_plugin_entry_fn>(sym);
    npa_plugin_query q{};
    q.struct_size = sizeof(q);
    q.abi_major = NPA_PLUGIN_ABI_MAJOR;
    q.abi_minor = NPA_PLUGIN_ABI_MINOR;
    p->info_ = p->entry_(&q);
    if (p->info_ == nullptr) {
      if (error) *error = path + ": the entry refused ABI " + std::to_string(q.abi_major) + "." +
                          std::to_string(q.abi_minor);
      return nullptr;
    }
    return p;
  }
  PluginObject(const PluginObject&) = delete;
  PluginObject& operator=(const PluginObject&) = delete;
  ~PluginObject() { ::dlclose(handle_); }

  void* handle() const { return handle_; }
  npa_plugin_entry_fn entry() const { return entry_; }
  const npa_plugin_info* info() const { return info_; }
  const npa_plugin_ctrl_ops* ctrl() const { return info_->ctrl; }
  const npa_plugin_fast_ops* fast() const { return info_->fast; }

 private:
  explicit PluginObject(void* h) : handle_(h) {}
  void* handle_;
  npa_plugin_entry_fn entry_ = nullptr;
  const npa_plugin_info* info_ = nullptr;
};

}  // namespace npa::testkit

#endif  // NPA_TESTING_PLUGIN_TESTKIT_H_
