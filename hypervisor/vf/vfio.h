// hypervisor/vf/vfio.h — the one VFIO host library of npa (target npa_vfio):
// the type1 container, IOMMU groups, devices, DMA maps and interrupt wiring,
// RAII and Status-based. The agent (RealVfioLayer, vfio_layer.h), npa-conform
// (conform/) and the lab programs (tests/lab) all open devices through
// it; nothing else in the tree issues container or IOMMU ioctls. It needs
// only npa_common: no libpci, no sysfs seam.
//
// One call opens a function the way every user wants it — its own container,
// its IOMMU group attached, the device:
//
//   using namespace npa::agent::vf;
//   NPA_ASSIGN_OR_RETURN(VfioFunction f, VfioFunction::Open("0000:03:00.0"));
//   // A memfd region mapped here and DMA-mapped at iova == vaddr (the shell's
//   // convention, docs/architecture.md "Memory"):
//   NPA_ASSIGN_OR_RETURN(DmaRegion r, f.container().MapMemfdRegion(8 << 20, "npa-lab"));
//   NPA_RETURN_IF_ERROR(f.device().SetIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, 0, {efd}));
//   NPA_ASSIGN_OR_RETURN(UniqueFd for_guest, f.device().Dup());
//
// or piece by piece (the agent maps a guest's memfd at the guest's address,
// so vaddr != iova there):
//
//   NPA_ASSIGN_OR_RETURN(VfioContainer c, VfioContainer::Open());
//   NPA_ASSIGN_OR_RETURN(int gid, VfioGroup::GroupOf("0000:03:00.0"));
//   NPA_ASSIGN_OR_RETURN(VfioGroup g, VfioGroup::Open(gid));
//   NPA_RETURN_IF_ERROR(g.AttachTo(c));                 // viable check, SET_CONTAINER, SET_IOMMU
//   NPA_ASSIGN_OR_RETURN(VfioDevice d, g.OpenDevice("0000:03:00.0"));
//   NPA_RETURN_IF_ERROR(c.MapDma(agent_vaddr, /*iova=*/guest_vaddr, size));
//
// States: a container is "open" until a group is attached, then "IOMMU set"
// (MapDma/UnmapDma before that are kFailedPrecondition). A group is attached
// to at most one container. DMA maps live as long as the container fd.
//
// Errors name the ioctl and the object ("VFIO_IOMMU_MAP_DMA iova=0x... on
// /dev/vfio/vfio: Invalid argument"). Every struct passed has argsz set.
//
// Ownership and lifetime: objects are move-only and own their fds;
// destruction closes them (the kernel then drops the device, detaches the
// group, and unmaps every DMA range of the container). A VfioDevice and a
// MappedRegion may outlive their group object (the kernel holds references).
// A DmaRegion holds its own reference to its container (a dup of the fd), so
// its unmap never reaches a recycled fd number; destroy it before the
// function's group closes (declare it after the VfioFunction): once the last
// group leaves a container the kernel drops its IOMMU and every mapping, and
// the unmap can only report that.
//
// Threads: none of these objects locks; one owner uses each. Different
// objects may be used from different threads (the kernel serializes).
#ifndef NPA_HYPERVISOR_VF_VFIO_H_
#define NPA_HYPERVISOR_VF_VFIO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace npa::agent::vf {

// Memory this process shares with a device: a memfd mapped MAP_SHARED here and
// DMA-mapped at iova == its virtual address, read and write for the device.
// Made by VfioContainer::MapMemfdRegion. Zero-filled when made.
class DmaRegion {
 public:
  DmaRegion() = default;
  DmaRegion(DmaRegion&& o) noexcept;
  DmaRegion& operator=(DmaRegion&& o) noexcept;
  // Unmap(), its error logged (a destructor has nowhere to return it).
  ~DmaRegion();

  uint8_t* data() const { return addr_; }
  uint64_t size() const { return size_; }
  uint64_t iova() const { return reinterpret_cast<uintptr_t>(addr_); }
  bool mapped() const { return addr_ != nullptr; }

  // VFIO_IOMMU_UNMAP_DMA, then munmap. The device must no longer use the
  // memory. Idempotent: a second call, or one on an empty region, is OK.
  absl::Status Unmap();

 private:
  friend class VfioContainer;
  UniqueFd container_;  // a dup of the container's fd, for the unmap
  std::string container_path_;
  uint8_t* addr_ = nullptr;
  uint64_t size_ = 0;
};

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
  // A fresh memfd of `size` bytes (rounded up to 4 KiB) named `name`, mapped
  // here and DMA-mapped at iova == vaddr. Needs a group attached.
  absl::StatusOr<DmaRegion> MapMemfdRegion(uint64_t size, const char* name);

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
  // IOMMU group number of a PCI function: the target of
  // <sysfs_root>/bus/pci/devices/<bdf>/iommu_group. kFailedPrecondition when
  // the function has no group (no IOMMU, or the function is absent).
  static absl::StatusOr<int> GroupOf(absl::string_view bdf, absl::string_view sysfs_root = "/sys");
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

// Where VfioFunction::Open looks: the group nodes and the container live in
// dev_dir ("<dev_dir>/vfio", "<dev_dir>/<group>"), the iommu_group links under
// sysfs_root.
struct VfioOpenOptions {
  std::string dev_dir = "/dev/vfio";
  std::string sysfs_root = "/sys";
};

// One PCI function opened for user-space DMA: its own type1 container, its
// IOMMU group attached (viable check, SET_CONTAINER, SET_IOMMU), the device.
// The function must already be bound to vfio-pci (hypervisor/vf/vf_bind.h)
// and its group must hold nothing else that is bound to a host driver.
class VfioFunction {
 public:
  // kUnavailable with a hint when the group node is busy (a group opens
  // once: another process, or a guest that was force-detached and still
  // holds the device fd).
  static absl::StatusOr<VfioFunction> Open(absl::string_view bdf, const VfioOpenOptions& opts = {});

  VfioContainer& container() { return container_; }
  VfioGroup& group() { return group_; }
  VfioDevice& device() { return device_; }
  const VfioContainer& container() const { return container_; }
  const VfioGroup& group() const { return group_; }
  const VfioDevice& device() const { return device_; }

  VfioFunction(VfioFunction&&) = default;
  VfioFunction& operator=(VfioFunction&&) = default;

 private:
  VfioFunction(VfioContainer c, VfioGroup g, VfioDevice d)
      : container_(std::move(c)), group_(std::move(g)), device_(std::move(d)) {}
  // Members die in reverse order: device, group, container — the order the
  // kernel wants them released.
  VfioContainer container_;
  VfioGroup group_;
  VfioDevice device_;
};

// Validates a DMA range (alignment, size, wrap-around) without any ioctl.
absl::Status CheckDmaRange(uint64_t vaddr, uint64_t iova, uint64_t size);
// A PCI device name that is safe to put in a path and to hand to
// VFIO_GROUP_GET_DEVICE_FD: 1..31 characters of [0-9a-fA-F:.], not "." or
// "..". The kernel decides whether it names a device.
absl::Status CheckPciName(absl::string_view bdf);

}  // namespace npa::agent::vf

#endif  // NPA_HYPERVISOR_VF_VFIO_H_
