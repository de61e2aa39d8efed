// shell/vf/vf_services.cc — npa_services over a VFIO device fd (see the header).
#include "shell/vf/vf_services.h"

#include <errno.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace npa::shell {
namespace {

constexpr const char* kBarNames[6] = {"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5"};

class FdDeviceIo : public VfioDeviceIo {
 public:
  explicit FdDeviceIo(int fd) : fd_(fd) {}
  int Ioctl(unsigned long req, void* arg) override { return ioctl(fd_, req, arg); }
  ssize_t Pread(void* buf, size_t len, uint64_t off) override {
    return pread(fd_, buf, len, static_cast<off_t>(off));
  }
  ssize_t Pwrite(const void* buf, size_t len, uint64_t off) override {
    return pwrite(fd_, buf, len, static_cast<off_t>(off));
  }
  void* Mmap(size_t len, uint64_t off) override {
    return mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, static_cast<off_t>(off));
  }
  void Munmap(void* addr, size_t len) override { munmap(addr, len); }

 private:
  int fd_;
};

bool IsPow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

VfServices* Self(void* ctx) { return static_cast<VfServices*>(ctx); }

}  // namespace

std::unique_ptr<VfioDeviceIo> MakeFdDeviceIo(int device_fd) {
  return std::make_unique<FdDeviceIo>(device_fd);
}

// ------------------------------------------------------------ DMA arena

RegionDmaArena::RegionDmaArena(void* base, uint64_t len, uint64_t iova_base)
    : base_(static_cast<uint8_t*>(base)), len_(len), iova_base_(iova_base) {
  if (base_ != nullptr && len_ > 0) free_[0] = len_;
}

absl::StatusOr<npa_dma_mem> RegionDmaArena::Alloc(uint64_t size, uint64_t align) {
  if (size == 0 || size > len_)
    return absl::InvalidArgumentError(absl::StrCat("DMA alloc: bad size ", size));
  if (!IsPow2(align) || align > kMaxAlign)
    return absl::InvalidArgumentError(absl::StrCat("DMA alloc: alignment ", align,
                                                   " is not a power of two <= 2 MB"));
  // Round to cache lines so neighbouring blocks never share one.
  uint64_t want = (size + 63) & ~uint64_t{63};
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    uint64_t off = it->first, flen = it->second;
    // Align the IOVA (what the device sees); vaddr and IOVA differ by a
    // constant, so the CPU address is aligned too when iova_base is.
    uint64_t iova = iova_base_ + off;
    uint64_t pad = ((iova + align - 1) & ~(align - 1)) - iova;
    if (pad > flen || flen - pad < want) continue;
    uint64_t start = off + pad;
    free_.erase(it);
    if (pad) free_[off] = pad;
    if (flen - pad > want) free_[start + want] = flen - pad - want;
    used_[start] = want;
    std::memset(base_ + start, 0, want);
    npa_dma_mem m{};
    m.struct_size = sizeof(m);
    m.vaddr = base_ + start;
    m.iova = iova_base_ + start;
    m.size = want;
    m.handle = start;
    return m;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("DMA arena exhausted: no ", want, "-byte block aligned to ", align));
}

absl::Status RegionDmaArena::Free(const npa_dma_mem& mem) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = used_.find(mem.handle);
  if (it == used_.end() || mem.vaddr != base_ + mem.handle)
    return absl::InvalidArgumentError(
        absl::StrCat("DMA free: handle ", mem.handle, " was not allocated here"));
  uint64_t off = it->first, len = it->second;
  used_.erase(it);
  // Insert and coalesce with both neighbours.
  auto next = free_.lower_bound(off);
  if (next != free_.end() && off + len == next->first) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += len;
      return absl::OkStatus();
    }
  }
  free_[off] = len;
  return absl::OkStatus();
}

uint64_t RegionDmaArena::bytes_free() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& [off, len] : free_) n += len;
  return n;
}

// ----------------------------------------------------------- VfServices

VfServices::VfServices(std::unique_ptr<VfioDeviceIo> io, std::string name, DmaArena* arena,
                       BufferProvider* buffers, uint16_t nb_queues, LogSink log)
    : io_(std::move(io)),
      name_(std::move(name)),
      arena_(arena),
      buffers_(buffers),
      nb_queues_(nb_queues),
      log_(std::move(log)) {
  table_.struct_size = sizeof(table_);
  table_.abi_major = NPA_PLUGIN_ABI_MAJOR;
  table_.abi_minor = NPA_PLUGIN_ABI_MINOR;
  table_.ctx = this;
  table_.bar_map = &BarMap;
  table_.cfg_read = &CfgRead;
  table_.cfg_write = &CfgWrite;
  table_.dma_alloc = &DmaAlloc;
  table_.dma_free = &DmaFree;
  table_.irq_setup = &IrqSetup;
  table_.buf_alloc = &BufAlloc;
  table_.buf_free = &BufFree;
  table_.log = &LogV;
  table_.now_ns = &NowNs;
  table_.sleep_us = &SleepUs;
  table_.buf_free_tx = &BufFreeTx;
}

absl::StatusOr<std::unique_ptr<VfServices>> VfServices::Create(std::unique_ptr<VfioDeviceIo> io,
                                                               std::string device_name,
                                                               DmaArena* arena,
                                                               BufferProvider* buffers,
                                                               uint16_t nb_queues, LogSink log) {
  if (io == nullptr || arena == nullptr || buffers == nullptr || nb_queues == 0)
    return absl::InvalidArgumentError(
        "VfServices: device io, DMA arena and buffer provider are required, nb_queues >= 1");
  std::unique_ptr<VfServices> s(new VfServices(std::move(io), std::move(device_name), arena,
                                               buffers, nb_queues, std::move(log)));
  NPA_RETURN_IF_ERROR(s->Init());
  return s;
}

absl::Status VfServices::Init() {
  vfio_region_info ri{};
  ri.argsz = sizeof(ri);
  ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
  if (io_->Ioctl(VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
    return IoctlError("VFIO_DEVICE_GET_REGION_INFO", "config region", errno);
  if (ri.argsz < sizeof(ri) || ri.size < 64 || ri.size > 4096 ||
      !(ri.flags & VFIO_REGION_INFO_FLAG_READ))
    return absl::FailedPreconditionError(
        absl::StrCat(name_, ": config region looks wrong (argsz ", ri.argsz, ", size ", ri.size,
                     ", flags 0x", absl::Hex(ri.flags), "); is this a vfio-pci device?"));
  cfg_offset_ = ri.offset;
  cfg_size_ = ri.size;
  return absl::OkStatus();
}

VfServices::~VfServices() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!msix_efds_.empty()) DisableIrqIndex(VFIO_PCI_MSIX_IRQ_INDEX);
  if (err_efd_ >= 0) DisableIrqIndex(VFIO_PCI_ERR_IRQ_INDEX);
  if (req_efd_ >= 0) DisableIrqIndex(VFIO_PCI_REQ_IRQ_INDEX);
  for (int fd : msix_efds_) close(fd);
  if (err_efd_ >= 0) close(err_efd_);
  if (req_efd_ >= 0) close(req_efd_);
  for (Bar& b : bars_)
    if (b.addr != nullptr) io_->Munmap(b.addr, b.len);
  for (auto& [h, m] : dma_) (void)arena_->Free(m);
}

void VfServices::Log(int level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  LogV(this, level, fmt, ap);
  va_end(ap);
}

absl::Status VfServices::IoctlError(const char* ioctl_name, const std::string& what, int err) {
  absl::Status s = ErrnoError(err, ioctl_name, "(", what, ") on ", name_);
  Log(NPA_LOG_ERROR, "%s", std::string(s.message()).c_str());
  return s;
}

absl::StatusOr<uint32_t> VfServices::IrqCount(uint32_t index) {
  vfio_irq_info ii{};
  ii.argsz = sizeof(ii);
  ii.index = index;
  if (io_->Ioctl(VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
    return IoctlError("VFIO_DEVICE_GET_IRQ_INFO", absl::StrCat("index ", index), errno);
  if (ii.argsz < sizeof(ii) || !(ii.flags & VFIO_IRQ_INFO_EVENTFD)) return 0u;
  return ii.count;
}

int VfServices::DisableIrqIndex(uint32_t index) {
  vfio_irq_set s{};
  s.argsz = sizeof(s);
  s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
  s.index = index;
  s.start = 0;
  s.count = 0;
  if (io_->Ioctl(VFIO_DEVICE_SET_IRQS, &s) < 0) {
    int err = errno;
    (void)IoctlError("VFIO_DEVICE_SET_IRQS", absl::StrCat("disable index ", index), err);
    return -err;
  }
  return 0;
}

absl::StatusOr<npa_device_info> VfServices::DeviceInfo() {
  npa_device_info info{};
  info.struct_size = sizeof(info);
  uint32_t v = 0;
  auto rd = [&](uint32_t off, uint32_t len) -> absl::Status {
    int rc = CfgRead(this, off, len, &v);
    if (rc != 0) return ErrnoError(-rc, "config read at ", off, " on ", name_);
    return absl::OkStatus();
  };
  NPA_RETURN_IF_ERROR(rd(0x00, 4));
  info.vendor = static_cast<uint16_t>(v);
  info.device = static_cast<uint16_t>(v >> 16);
  NPA_RETURN_IF_ERROR(rd(0x08, 4));
  info.revision = static_cast<uint8_t>(v);
  info.class_code = v >> 8;
  NPA_RETURN_IF_ERROR(rd(0x2c, 4));
  info.subsystem_vendor = static_cast<uint16_t>(v);
  info.subsystem_device = static_cast<uint16_t>(v >> 16);
  for (uint32_t b = 0; b < 6; b++) {
    vfio_region_info ri{};
    ri.argsz = sizeof(ri);
    ri.index = VFIO_PCI_BAR0_REGION_INDEX + b;
    if (io_->Ioctl(VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
      return IoctlError("VFIO_DEVICE_GET_REGION_INFO", kBarNames[b], errno);
    if (ri.size != 0 && (ri.flags & VFIO_REGION_INFO_FLAG_MMAP)) info.num_bars_mappable |= 1u << b;
  }
  NPA_ASSIGN_OR_RETURN(uint32_t nvec, IrqCount(VFIO_PCI_MSIX_IRQ_INDEX));
  info.msix_vectors = nvec > kMaxVectors ? kMaxVectors : nvec;
  std::snprintf(info.pci_address, sizeof(info.pci_address), "%s", name_.c_str());
  return info;
}

absl::StatusOr<int> VfServices::WireSingleIrq(uint32_t index, const char* label, int* slot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (*slot >= 0) return *slot;
  NPA_ASSIGN_OR_RETURN(uint32_t count, IrqCount(index));
  if (count < 1)
    return absl::FailedPreconditionError(
        absl::StrCat(name_, ": the device has no VFIO ", label, " interrupt"));
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return ErrnoError(errno, "eventfd for the ", label, " interrupt of ", name_);
  alignas(vfio_irq_set) uint8_t buf[sizeof(vfio_irq_set) + sizeof(int32_t)] = {};
  auto* s = reinterpret_cast<vfio_irq_set*>(buf);
  s->argsz = sizeof(buf);
  s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  s->index = index;
  s->start = 0;
  s->count = 1;
  std::memcpy(s->data, &efd, sizeof(int32_t));
  if (io_->Ioctl(VFIO_DEVICE_SET_IRQS, s) < 0) {
    int err = errno;
    close(efd);
    return IoctlError("VFIO_DEVICE_SET_IRQS", label, err);
  }
  *slot = efd;
  return efd;
}

absl::StatusOr<int> VfServices::WireErrIrq() {
  return WireSingleIrq(VFIO_PCI_ERR_IRQ_INDEX, "ERR", &err_efd_);
}
absl::StatusOr<int> VfServices::WireReqIrq() {
  return WireSingleIrq(VFIO_PCI_REQ_IRQ_INDEX, "REQ", &req_efd_);
}

std::vector<int> VfServices::msix_eventfds() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mu_));
  return msix_efds_;
}

// -------------------------------------------------- the services entries

int VfServices::BarMap(void* ctx, uint32_t bar, volatile void** addr, uint64_t* len) {
  VfServices* s = Self(ctx);
  if (s == nullptr || addr == nullptr || len == nullptr || bar >= 6) {
    if (s) s->Log(NPA_LOG_WARN, "bar_map: rejected (bar %u, addr %p, len %p)", bar, (void*)addr,
                  (void*)len);
    return -EINVAL;
  }
  std::lock_guard<std::mutex> lock(s->mu_);
  Bar& b = s->bars_[bar];
  if (b.addr == nullptr) {
    vfio_region_info ri{};
    ri.argsz = sizeof(ri);
    ri.index = VFIO_PCI_BAR0_REGION_INDEX + bar;
    if (s->io_->Ioctl(VFIO_DEVICE_GET_REGION_INFO, &ri) < 0) {
      int err = errno;
      (void)s->IoctlError("VFIO_DEVICE_GET_REGION_INFO", kBarNames[bar], err);
      return -err;
    }
    // The kernel raises argsz when capabilities follow; it never lowers it
    // below the base struct it filled in.
    if (ri.argsz < sizeof(ri) || ri.size == 0 || !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) ||
        ri.size > (1ull << 40)) {
      s->Log(NPA_LOG_WARN, "bar_map: %s is not mappable (size 0x%llx, flags 0x%x)", kBarNames[bar],
             (unsigned long long)ri.size, ri.flags);
      return -EINVAL;
    }
    void* m = s->io_->Mmap(ri.size, ri.offset);
    if (m == MAP_FAILED || m == nullptr) {
      int err = errno ? errno : EINVAL;
      s->Log(NPA_LOG_ERROR, "bar_map: mmap of %s (0x%llx bytes) on %s: %s", kBarNames[bar],
             (unsigned long long)ri.size, s->name_.c_str(), strerror(err));
      return -err;
    }
    b.addr = m;
    b.len = ri.size;
  }
  *addr = b.addr;
  *len = b.len;
  return 0;
}

int VfServices::CfgRead(void* ctx, uint32_t off, uint32_t len, uint32_t* val) {
  VfServices* s = Self(ctx);
  if (s == nullptr || val == nullptr || (len != 1 && len != 2 && len != 4) ||
      uint64_t{off} + len > s->cfg_size_) {
    if (s) s->Log(NPA_LOG_WARN, "cfg_read: rejected (off 0x%x, len %u)", off, len);
    return -EINVAL;
  }
  uint32_t v = 0;
  ssize_t r = s->io_->Pread(&v, len, s->cfg_offset_ + off);
  if (r != static_cast<ssize_t>(len)) {
    int err = r < 0 ? errno : EIO;
    s->Log(NPA_LOG_ERROR, "cfg_read: pread of %u bytes at 0x%x on %s: %s", len, off,
           s->name_.c_str(), strerror(err));
    return -err;
  }
  *val = v;  // little-endian host: the low len bytes hold the value
  return 0;
}

int VfServices::CfgWrite(void* ctx, uint32_t off, uint32_t len, uint32_t val) {
  VfServices* s = Self(ctx);
  if (s == nullptr || (len != 1 && len != 2 && len != 4) || uint64_t{off} + len > s->cfg_size_ ||
      (len < 4 && (val >> (8 * len)) != 0)) {
    if (s) s->Log(NPA_LOG_WARN, "cfg_write: rejected (off 0x%x, len %u, val 0x%x)", off, len, val);
    return -EINVAL;
  }
  ssize_t r = s->io_->Pwrite(&val, len, s->cfg_offset_ + off);
  if (r != static_cast<ssize_t>(len)) {
    int err = r < 0 ? errno : EIO;
    s->Log(NPA_LOG_ERROR, "cfg_write: pwrite of %u bytes at 0x%x on %s: %s", len, off,
           s->name_.c_str(), strerror(err));
    return -err;
  }
  return 0;
}

int VfServices::DmaAlloc(void* ctx, uint64_t size, uint64_t align, npa_dma_mem* out) {
  VfServices* s = Self(ctx);
  if (s == nullptr || out == nullptr) return -EINVAL;
  absl::StatusOr<npa_dma_mem> m = s->arena_->Alloc(size, align);
  if (!m.ok()) {
    s->Log(NPA_LOG_WARN, "dma_alloc(%llu, %llu): %s", (unsigned long long)size,
           (unsigned long long)align, std::string(m.status().message()).c_str());
    return absl::IsResourceExhausted(m.status()) ? -ENOMEM : -EINVAL;
  }
  std::lock_guard<std::mutex> lock(s->mu_);
  uint64_t h = s->next_handle_++;
  s->dma_[h] = *m;
  *out = *m;
  out->handle = h;  // ours, not the arena's: only blocks we gave out come back
  return 0;
}

void VfServices::DmaFree(void* ctx, npa_dma_mem* mem) {
  VfServices* s = Self(ctx);
  if (s == nullptr || mem == nullptr) return;
  npa_dma_mem block;
  {
    std::lock_guard<std::mutex> lock(s->mu_);
    auto it = s->dma_.find(mem->handle);
    if (it == s->dma_.end() || it->second.vaddr != mem->vaddr) {
      s->Log(NPA_LOG_WARN, "dma_free: handle %llu / %p was not handed out; ignored",
             (unsigned long long)mem->handle, mem->vaddr);
      return;
    }
    block = it->second;
    s->dma_.erase(it);
  }
  absl::Status st = s->arena_->Free(block);
  if (!st.ok()) s->Log(NPA_LOG_ERROR, "dma_free: %s", std::string(st.message()).c_str());
  std::memset(mem, 0, sizeof(*mem));
}

int VfServices::IrqSetup(void* ctx, uint32_t nvec, int* efds) {
  VfServices* s = Self(ctx);
  if (s == nullptr || (nvec > 0 && efds == nullptr) || nvec > kMaxVectors) return -EINVAL;
  std::lock_guard<std::mutex> lock(s->mu_);
  absl::StatusOr<uint32_t> count = s->IrqCount(VFIO_PCI_MSIX_IRQ_INDEX);
  if (!count.ok()) return -EIO;
  if (nvec > *count) {
    s->Log(NPA_LOG_WARN, "irq_setup: %u vectors asked, %s has %u", nvec, s->name_.c_str(), *count);
    return -EINVAL;
  }
  // VFIO cannot grow an enabled MSI-X block: disable before re-wiring.
  if (!s->msix_efds_.empty()) {
    int rc = s->DisableIrqIndex(VFIO_PCI_MSIX_IRQ_INDEX);
    for (int fd : s->msix_efds_) close(fd);
    s->msix_efds_.clear();
    if (rc != 0) return rc;
  }
  if (nvec == 0) return 0;
  std::vector<int> fds;
  for (uint32_t i = 0; i < nvec; i++) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      for (int f : fds) close(f);
      return -err;
    }
    fds.push_back(fd);
  }
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + sizeof(int32_t) * nvec);
  auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  set->index = VFIO_PCI_MSIX_IRQ_INDEX;
  set->start = 0;
  set->count = nvec;
  std::memcpy(set->data, fds.data(), sizeof(int32_t) * nvec);
  if (s->io_->Ioctl(VFIO_DEVICE_SET_IRQS, set) < 0) {
    int err = errno;
    (void)s->IoctlError("VFIO_DEVICE_SET_IRQS", absl::StrCat("MSI-X, ", nvec, " eventfds"), err);
    for (int f : fds) close(f);
    return -err;
  }
  s->msix_efds_ = fds;
  for (uint32_t i = 0; i < nvec; i++) efds[i] = fds[i];
  return 0;
}

uint16_t VfServices::BufAlloc(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n) {
  VfServices* s = Self(ctx);
  if (s == nullptr || bufs == nullptr || qid >= s->nb_queues_ || n == 0) return 0;
  uint16_t got = s->buffers_->Alloc(qid, bufs, n);
  return got > n ? n : got;
}

void VfServices::BufFree(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n) {
  VfServices* s = Self(ctx);
  if (s == nullptr || bufs == nullptr || n == 0) return;
  if (qid >= s->nb_queues_) {
    s->Log(NPA_LOG_ERROR, "buf_free: queue %u out of range (%u queues); %u buffers leaked", qid,
           s->nb_queues_, n);
    return;
  }
  s->buffers_->Free(qid, bufs, n);
}

void VfServices::BufFreeTx(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n) {
  VfServices* s = Self(ctx);
  if (s == nullptr || bufs == nullptr || n == 0) return;
  if (qid >= s->nb_queues_) {
    s->Log(NPA_LOG_ERROR, "buf_free_tx: queue %u out of range (%u queues); %u buffers leaked", qid,
           s->nb_queues_, n);
    return;
  }
  s->buffers_->FreeTx(qid, bufs, n);
}

void VfServices::LogV(void* ctx, int level, const char* fmt, va_list ap) {
  VfServices* s = Self(ctx);
  if (s == nullptr || fmt == nullptr || !s->log_) return;
  if (level < NPA_LOG_ERROR) level = NPA_LOG_ERROR;
  if (level > NPA_LOG_DEBUG) level = NPA_LOG_DEBUG;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  s->log_(level, line);
}

uint64_t VfServices::NowNs(void*) { return MonotonicNs(); }

void VfServices::SleepUs(void*, uint32_t us) {
  us = ClampSleepUs(us);
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace npa::shell
