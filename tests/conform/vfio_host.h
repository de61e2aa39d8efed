// tests/conform/vfio_host.h — the conformance host's own VFIO access: the
// container/group/device of one PCI function bound to vfio-pci, a DMA region
// (memfd) mapped at iova == vaddr, and the raw device operations the
// services table needs (config space, BAR mmap, MSI-X eventfds, reset).
//
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<VfioHost> h, VfioHost::Open("0000:01:00.0"));
//   NPA_ASSIGN_OR_RETURN(DmaRegion r, h->MapRegion(16 << 20));   // iova == r.base
//   uint32_t id; h->CfgRead(0, 4, &id);
//
// This is the npa-conform harness's stand-in for the host agent (which owns
// the container in production, docs/architecture.md "VF path"). Needs root and a
// function already bound to vfio-pci whose IOMMU group holds nothing else.
#ifndef NPA_TESTS_CONFORM_VFIO_HOST_H_
#define NPA_TESTS_CONFORM_VFIO_HOST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "npa/plugin.h"

namespace npa::conform {

struct DmaRegion {
  uint8_t* base = nullptr;  // also the IOVA
  uint64_t len = 0;
};

class VfioHost {
 public:
  static absl::StatusOr<std::unique_ptr<VfioHost>> Open(const std::string& bdf);
  ~VfioHost();
  VfioHost(const VfioHost&) = delete;
  VfioHost& operator=(const VfioHost&) = delete;

  // A zero-filled memfd mapping of len bytes, DMA-mapped at iova == vaddr.
  // Unmapped (IOMMU and process) in the destructor.
  absl::StatusOr<DmaRegion> MapRegion(uint64_t len);

  int CfgRead(uint32_t off, uint32_t len, uint32_t* val);
  int CfgWrite(uint32_t off, uint32_t len, uint32_t val);
  // mmap of the whole BAR (cached). -EINVAL when not mappable.
  int BarMap(uint32_t bar, volatile void** addr, uint64_t* len);
  // MSI-X vectors 0..nvec-1 on fresh eventfds (nvec 0: disable). efds
  // receives the fds, which this object owns.
  int MsixSetup(uint32_t nvec, int* efds);
  // VFIO_DEVICE_RESET (FLR or bus reset, whatever the kernel picked).
  absl::Status Reset();

  const npa_device_info& info() const { return info_; }
  int device_fd() const { return device_; }

 private:
  VfioHost() = default;
  absl::Status Init(const std::string& bdf);
  void CloseMsix();

  int container_ = -1, group_ = -1, device_ = -1;
  uint64_t cfg_off_ = 0, cfg_size_ = 0;
  struct Bar {
    uint64_t off = 0, size = 0;
    bool mmap_ok = false;
    void* map = nullptr;
  } bars_[6];
  std::vector<int> msix_fds_;
  std::vector<DmaRegion> regions_;
  npa_device_info info_{};
};

}  // namespace npa::conform

#endif  // NPA_TESTS_CONFORM_VFIO_HOST_H_
