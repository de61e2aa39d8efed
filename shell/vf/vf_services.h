// shell/vf/vf_services.h — the plug-in services table (npa_services, plugin.h)
// over a VFIO device fd: the VF path's half of the plug-in ABI.
//
//   RegionDmaArena arena(region_base, region_len, /*iova_base=*/region_iova);
//   MyPools pools;                                  // a BufferProvider
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<VfServices> vf,
//       VfServices::Create(device_fd, "0000:01:00.0", &arena, &pools, /*nb_queues=*/1,
//                          [](int level, std::string_view line) { ... }));
//   NPA_ASSIGN_OR_RETURN(npa_device_info info, vf->DeviceInfo());
//   NPA_RETURN_IF_ERROR(plugin_device.Probe(vf->table(), info));
//   NPA_ASSIGN_OR_RETURN(int req_efd, vf->WireReqIrq());   // agent wants the device back
//   NPA_ASSIGN_OR_RETURN(int err_efd, vf->WireErrIrq());   // device error (AER)
//
// What it gives the plug-in (npa/plugin.h, "Services"):
//   bar_map    VFIO_DEVICE_GET_REGION_INFO (argsz checked, MMAP flag
//              required) and an mmap of the whole BAR, cached until destruction.
//   cfg_*      pread/pwrite of the config region; len 1, 2 or 4; offset+len
//              inside the region.
//   dma_*      sub-allocations of a DmaArena: memory that is already
//              IOMMU-mapped (the agent mapped the shell's regions). Only
//              handles this table gave out are accepted back.
//   irq_setup  VFIO_DEVICE_GET_IRQ_INFO(MSI-X) for the count, eventfds, and
//              VFIO_DEVICE_SET_IRQS(DATA_EVENTFD | ACTION_TRIGGER); nvec 0
//              disables MSI-X. The eventfds stay owned by this object.
//   buf_*      the BufferProvider, per queue (qid < nb_queues).
//   log        the LogSink, with the device name in front.
//   now_ns / sleep_us   npa::MonotonicNs (common/clock.h, CLOCK_MONOTONIC);
//              sleeps are clamped to 1 s.
// Every entry checks its arguments and returns negative errno; every ioctl
// failure is logged naming the ioctl and the device.
//
// Ownership: the device fd belongs to the caller (the agent passed it, or a
// harness opened it) and must outlive this object; VfServices never closes it.
// The destructor disables every interrupt it wired, closes its eventfds,
// unmaps BARs and returns outstanding DMA allocations to the arena.
//
// Threading: the table may be called from the plug-in's control thread and
// (buf_*, now_ns, log) from queue threads at the same time; the shared state
// (DMA bookkeeping, IRQ state) is behind a mutex, the per-queue calls go
// straight to the provider.
#ifndef NPA_SHELL_VF_VF_SERVICES_H_
#define NPA_SHELL_VF_VF_SERVICES_H_

#include <sys/types.h>

#include <cstdarg>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "npa/plugin.h"

namespace npa::shell {

// DMA memory the device may use: rings and the like for plug-ins.
class DmaArena {
 public:
  virtual ~DmaArena() = default;
  // size bytes aligned to align (a power of two), zero-filled.
  // RESOURCE_EXHAUSTED when there is no room, INVALID_ARGUMENT for bad sizes.
  virtual absl::StatusOr<npa_dma_mem> Alloc(uint64_t size, uint64_t align) = 0;
  // Returns a block from Alloc; anything else is rejected (logged, ignored).
  virtual absl::Status Free(const npa_dma_mem& mem) = 0;
};

// A first-fit arena over one region that is already IOMMU-mapped: the byte at
// base + k has IOVA iova_base + k (the shell maps its regions at
// iova == vaddr, so iova_base is normally the base address). The region must
// outlive the arena. Thread-safe.
class RegionDmaArena : public DmaArena {
 public:
  RegionDmaArena(void* base, uint64_t len, uint64_t iova_base);
  absl::StatusOr<npa_dma_mem> Alloc(uint64_t size, uint64_t align) override;
  absl::Status Free(const npa_dma_mem& mem) override;
  uint64_t bytes_free() const;

  static constexpr uint64_t kMaxAlign = 2ull << 20;  // plugin.h: align <= 2 MB

 private:
  uint8_t* base_;
  uint64_t len_;
  uint64_t iova_base_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> free_;  // offset -> length, coalesced
  std::map<uint64_t, uint64_t> used_;  // offset -> length
};

// Packet buffers for plug-in RX rings, from the shell's per-queue pools.
// Called from queue qid's owning thread.
class BufferProvider {
 public:
  virtual ~BufferProvider() = default;
  virtual uint16_t Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) = 0;
  virtual void Free(uint16_t qid, npa_buf** bufs, uint16_t n) = 0;
  // ABI 1.1 buf_free_tx: TX frames the plug-in is done with. A provider
  // that does not count TX frames frees them like any other buffer.
  virtual void FreeTx(uint16_t qid, npa_buf** bufs, uint16_t n) { Free(qid, bufs, n); }
};

// Where plug-in log lines go; level is an npa_log_level.
using LogSink = std::function<void(int level, std::string_view line)>;

// The syscalls on the device fd, so tests can stand in for a device.
class VfioDeviceIo {
 public:
  virtual ~VfioDeviceIo() = default;
  // ioctl(fd, req, arg): >= 0 on success, -1 with errno set on failure.
  virtual int Ioctl(unsigned long req, void* arg) = 0;
  virtual ssize_t Pread(void* buf, size_t len, uint64_t off) = 0;
  virtual ssize_t Pwrite(const void* buf, size_t len, uint64_t off) = 0;
  // mmap(NULL, len, RW, MAP_SHARED, fd, off): MAP_FAILED with errno on error.
  virtual void* Mmap(size_t len, uint64_t off) = 0;
  virtual void Munmap(void* addr, size_t len) = 0;
};

// The real thing over a device fd it does not own.
std::unique_ptr<VfioDeviceIo> MakeFdDeviceIo(int device_fd);

class VfServices {
 public:
  static constexpr uint32_t kMaxSleepUs = 1000000;  // plugin.h: sleep <= 1 s
  static constexpr uint32_t kMaxVectors = 2048;     // PCI MSI-X table limit

  // device_name ("0000:01:00.0") is used in every log line and error.
  // arena and buffers must outlive the object. Fails when the device has no
  // config region (not a vfio-pci device).
  static absl::StatusOr<std::unique_ptr<VfServices>> Create(std::unique_ptr<VfioDeviceIo> io,
                                                            std::string device_name,
                                                            DmaArena* arena,
                                                            BufferProvider* buffers,
                                                            uint16_t nb_queues, LogSink log);
  static absl::StatusOr<std::unique_ptr<VfServices>> Create(int device_fd, std::string device_name,
                                                            DmaArena* arena,
                                                            BufferProvider* buffers,
                                                            uint16_t nb_queues, LogSink log) {
    return Create(MakeFdDeviceIo(device_fd), std::move(device_name), arena, buffers, nb_queues,
                  std::move(log));
  }
  ~VfServices();
  VfServices(const VfServices&) = delete;
  VfServices& operator=(const VfServices&) = delete;

  // The table to hand to the plug-in; valid for this object's lifetime.
  const npa_services* table() const { return &table_; }

  // What probe gets: IDs, class and revision from config space, mappable
  // BARs and the MSI-X vector count from VFIO.
  absl::StatusOr<npa_device_info> DeviceInfo();

  // Wire the VFIO ERR (AER) / REQ (release request) interrupt to an eventfd
  // this object owns and returns. The shell polls them and falls back to the
  // emulated path when one fires. FAILED_PRECONDITION if the device lacks it.
  absl::StatusOr<int> WireErrIrq();
  absl::StatusOr<int> WireReqIrq();

  // The MSI-X eventfds currently wired (vector i at index i).
  std::vector<int> msix_eventfds() const;
  const std::string& device_name() const { return name_; }

  // Exposed for tests: the clamp sleep_us applies.
  static uint32_t ClampSleepUs(uint32_t us) { return us > kMaxSleepUs ? kMaxSleepUs : us; }

 private:
  struct Bar {
    void* addr = nullptr;
    uint64_t len = 0;
  };
  VfServices(std::unique_ptr<VfioDeviceIo> io, std::string name, DmaArena* arena,
             BufferProvider* buffers, uint16_t nb_queues, LogSink log);
  absl::Status Init();
  void Log(int level, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  absl::Status IoctlError(const char* ioctl_name, const std::string& what, int err);
  absl::StatusOr<uint32_t> IrqCount(uint32_t index);
  int DisableIrqIndex(uint32_t index);
  absl::StatusOr<int> WireSingleIrq(uint32_t index, const char* label, int* slot);

  // The npa_services entries.
  static int BarMap(void* ctx, uint32_t bar, volatile void** addr, uint64_t* len);
  static int CfgRead(void* ctx, uint32_t off, uint32_t len, uint32_t* val);
  static int CfgWrite(void* ctx, uint32_t off, uint32_t len, uint32_t val);
  static int DmaAlloc(void* ctx, uint64_t size, uint64_t align, npa_dma_mem* out);
  static void DmaFree(void* ctx, npa_dma_mem* mem);
  static int IrqSetup(void* ctx, uint32_t nvec, int* efds);
  static uint16_t BufAlloc(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n);
  static void BufFree(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n);
  static void BufFreeTx(void* ctx, uint16_t qid, npa_buf** bufs, uint16_t n);
  static void LogV(void* ctx, int level, const char* fmt, va_list ap);
  static uint64_t NowNs(void* ctx);
  static void SleepUs(void* ctx, uint32_t us);

  std::unique_ptr<VfioDeviceIo> io_;
  std::string name_;
  DmaArena* arena_;
  BufferProvider* buffers_;
  uint16_t nb_queues_;
  LogSink log_;
  npa_services table_{};

  std::mutex mu_;
  uint64_t cfg_offset_ = 0, cfg_size_ = 0;
  Bar bars_[6];
  std::map<uint64_t, npa_dma_mem> dma_;  // handle -> block, as handed out
  uint64_t next_handle_ = 1;
  std::vector<int> msix_efds_;
  int err_efd_ = -1, req_efd_ = -1;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_VF_SERVICES_H_
