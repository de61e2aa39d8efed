// hypervisor/vf/vfio.h — the VFIO type1 user-space API, RAII and Status-based.
//
// The agent owns the container and the group: it DMA-maps each guest's shared
// memfd regions into the container (iova == the guest shell's virtual address,
// docs/architecture.md "Memory"), and hands the guest only a dup of the device fd.
//
//   using namespace npa::agent::vf;
//   NPA_ASSIGN_OR_RETURN(VfioContainer c, VfioContainer::Open());
//   NPA_ASSIGN_OR_RETURN(int gid, VfioGroup::GroupOf(sys, "0000:03:00.0"));
//   NPA_ASSIGN_OR_RETURN(VfioGroup g, VfioGroup::Open(gid));
//   NPA_RETURN_IF_ERROR(g.AttachTo(c));                 // viable check, SET_CONTAINER, SET_IOMMU
//   NPA_ASSIGN_OR_RETURN(VfioDevice d, g.OpenDevice("0000:03:00.0"));
//   NPA_RETURN_IF_ERROR(c.MapDma(vaddr, /*iova=*/vaddr, size));
//   NPA_ASSIGN_OR_RETURN(UniqueFd for_guest, d.Dup());
//
// Errors name the ioctl and the object ("VFIO_IOMMU_MAP_DMA iova=0x... on
// /dev/vfio/vfio: Invalid argument"). Every struct passed has argsz set.
// Objects are move-only; destruction closes the fd (the kernel then drops the
// device, detaches the group, and unmaps every DMA range of the container).
// Lifetimes: a VfioDevice and MappedRegion may outlive their group object (the
// kernel holds references), but DMA maps live only as long as the container fd.
#ifndef NPA_HYPERVISOR_VF_VFIO_H_
#define NPA_HYPERVISOR_VF_VFIO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vf/sysfs.h"

namespace npa::agent::vf {

class VfioContainer {
 public:
  // Opens the container, checks VFIO_GET_API_VERSION and that a type1 IOMMU
  // (v2 preferred) is available. kNotFound if `path` does not exist.
  static absl::StatusOr<VfioContainer> Open(std::string path = "/dev/vfio/vfio");

  // Maps [vaddr, vaddr+size) of this process at `iova`. All three must be
  // 4 KiB aligned, size > 0, no wrap-around. Needs a group attached first
  // (kFailedPrecondition otherwise). The kernel pins the pages.
  absl::Status MapDma(uint64_t vaddr, uint64_t iova, uint64_t size, bool device_writable = true);
  absl::Status UnmapDma(uint64_t iova, uint64_t size);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  int iommu_type() const { return iommu_type_; }  // VFIO_TYPE1v2_IOMMU or VFIO_TYPE1_IOMMU
  bool iommu_set() const { return iommu_set_; }

  VfioContainer(VfioContainer&&) = default;
  VfioContainer& operator=(VfioContainer&&) = default;

 private:
  friend class VfioGroup;
  VfioContainer() = default;
  UniqueFd fd_;
  std::string path_;
  int iommu_type_ = 0;
  bool iommu_set_ = false;
};

struct RegionInfo {
  uint32_t index = 0;
  uint32_t flags = 0;  // VFIO_REGION_INFO_FLAG_*
  uint64_t size = 0;
  uint64_t offset = 0;  // of the region within the device fd
  bool readable() const;
  bool writable() const;
  bool mmappable() const;
};

struct IrqInfo {
  uint32_t index = 0;
  uint32_t flags = 0;  // VFIO_IRQ_INFO_*
  uint32_t count = 0;
};

// An mmap of a device region; unmapped on destruction.
class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(void* addr, size_t size) : addr_(addr), size_(size) {}
  MappedRegion(MappedRegion&& o) noexcept;
  MappedRegion& operator=(MappedRegion&& o) noexcept;
  ~MappedRegion();
  volatile uint8_t* data() const { return static_cast<volatile uint8_t*>(addr_); }
  size_t size() const { return size_; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

class VfioDevice {
 public:
  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  uint32_t flags() const { return flags_; }
  uint32_t num_regions() const { return num_regions_; }
  uint32_t num_irqs() const { return num_irqs_; }
  bool is_pci() const;
  bool can_reset() const;  // VFIO_DEVICE_FLAGS_RESET

  absl::StatusOr<RegionInfo> GetRegionInfo(uint32_t index) const;
  absl::StatusOr<IrqInfo> GetIrqInfo(uint32_t index) const;
  // MSI-X, ERR and REQ vector counts (0 when the index is absent).
  struct IrqCounts {
    uint32_t msix = 0, err = 0, req = 0;
  };
  absl::StatusOr<IrqCounts> GetIrqCounts() const;

  // Config space through the config region; off + len <= region size.
  absl::Status ReadConfig(uint64_t off, void* buf, size_t len) const;
  absl::Status WriteConfig(uint64_t off, const void* buf, size_t len);
  // pread/pwrite on any region (BARs that cannot be mmapped).
  absl::Status ReadRegion(uint32_t index, uint64_t off, void* buf, size_t len) const;
  absl::Status WriteRegion(uint32_t index, uint64_t off, const void* buf, size_t len);
  // mmap of a whole region; kFailedPrecondition if it is not mmappable.
  absl::StatusOr<MappedRegion> MapRegion(uint32_t index);

  // Wires vectors [start, start+fds.size()) of irq `index` to eventfds.
  absl::Status SetIrqEventfds(uint32_t index, uint32_t start, const std::vector<int>& fds);
  absl::Status DisableIrqs(uint32_t index);
  // Fires vector `vector` of `index` from the kernel side (a loop-back test).
  absl::Status TriggerIrq(uint32_t index, uint32_t vector);

  // VFIO_DEVICE_RESET (FLR, bus or PM reset, per the function's reset_method).
  // kFailedPrecondition if the device has no reset.
  absl::Status Reset();
  // A new fd for the same device, for SCM_RIGHTS to a guest.
  absl::StatusOr<UniqueFd> Dup() const;

  VfioDevice(VfioDevice&&) = default;
  VfioDevice& operator=(VfioDevice&&) = default;

 private:
  friend class VfioGroup;
  VfioDevice() = default;
  absl::Status CheckRange(const RegionInfo& r, uint64_t off, size_t len, const char* what) const;
  UniqueFd fd_;
  std::string name_;
  uint32_t flags_ = 0, num_regions_ = 0, num_irqs_ = 0;
};

class VfioGroup {
 public:
  // IOMMU group number of a PCI function (its iommu_group link).
  static absl::StatusOr<int> GroupOf(const SysfsRoot& sys, absl::string_view bdf);
  // Opens <dev_dir>/<id>. kNotFound if absent (no IOMMU, or nothing bound to vfio-pci).
  static absl::StatusOr<VfioGroup> Open(int id, std::string dev_dir = "/dev/vfio");

  // VFIO_GROUP_GET_STATUS: viable = every device of the group is bound to
  // vfio-pci (or to no driver).
  absl::StatusOr<bool> Viable() const;
  // Viable check, VFIO_GROUP_SET_CONTAINER, and VFIO_SET_IOMMU if this is the
  // container's first group. kFailedPrecondition if not viable.
  absl::Status AttachTo(VfioContainer& c);
  absl::StatusOr<VfioDevice> OpenDevice(absl::string_view bdf);

  int id() const { return id_; }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  VfioGroup(VfioGroup&&) = default;
  VfioGroup& operator=(VfioGroup&&) = default;

 private:
  VfioGroup() = default;
  UniqueFd fd_;
  std::string path_;
  int id_ = -1;
};

// Validates a DMA range (alignment, size, wrap-around) without any ioctl.
absl::Status CheckDmaRange(uint64_t vaddr, uint64_t iova, uint64_t size);

}  // namespace npa::agent::vf

#endif  // NPA_HYPERVISOR_VF_VFIO_H_
