// tests/conform/vfio_host.cc — see vfio_host.h. VFIO UAPI:
// include/uapi/linux/vfio.h (type1 IOMMU, vfio-pci region/irq indices).
#include "tests/conform/vfio_host.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace npa::conform {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::ErrnoToStatus(errno, what);
}

}  // namespace

absl::StatusOr<std::unique_ptr<VfioHost>> VfioHost::Open(const std::string& bdf) {
  std::unique_ptr<VfioHost> h(new VfioHost());
  absl::Status s = h->Init(bdf);
  if (!s.ok()) return s;
  return h;
}

absl::Status VfioHost::Init(const std::string& bdf) {
  char link[512];
  std::string p = "/sys/bus/pci/devices/" + bdf + "/iommu_group";
  ssize_t n = readlink(p.c_str(), link, sizeof(link) - 1);
  if (n < 0) return Errno(absl::StrCat(p, ": no IOMMU group (is ", bdf, " bound to vfio-pci?)"));
  link[n] = 0;
  const char* g = strrchr(link, '/');
  std::string gpath = absl::StrCat("/dev/vfio/", g ? g + 1 : link);

  container_ = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  if (container_ < 0) return Errno("open /dev/vfio/vfio");
  if (ioctl(container_, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
    return absl::FailedPreconditionError("VFIO API version mismatch");
  group_ = open(gpath.c_str(), O_RDWR | O_CLOEXEC);
  if (group_ < 0) return Errno(absl::StrCat("open ", gpath));
  vfio_group_status gs{};
  gs.argsz = sizeof(gs);
  if (ioctl(group_, VFIO_GROUP_GET_STATUS, &gs) < 0) return Errno("VFIO_GROUP_GET_STATUS");
  if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
    return absl::FailedPreconditionError(
        absl::StrCat(gpath, " is not viable: bind every device of the group to vfio-pci"));
  if (ioctl(group_, VFIO_GROUP_SET_CONTAINER, &container_) < 0)
    return Errno("VFIO_GROUP_SET_CONTAINER");
  int type = ioctl(container_, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1 ? VFIO_TYPE1v2_IOMMU
                                                                                : VFIO_TYPE1_IOMMU;
  if (ioctl(container_, VFIO_SET_IOMMU, type) < 0) return Errno("VFIO_SET_IOMMU");
  device_ = ioctl(group_, VFIO_GROUP_GET_DEVICE_FD, bdf.c_str());
  if (device_ < 0) return Errno(absl::StrCat("VFIO_GROUP_GET_DEVICE_FD ", bdf));

  vfio_device_info di{};
  di.argsz = sizeof(di);
  if (ioctl(device_, VFIO_DEVICE_GET_INFO, &di) < 0) return Errno("VFIO_DEVICE_GET_INFO");
  if (!(di.flags & VFIO_DEVICE_FLAGS_PCI)) return absl::FailedPreconditionError("not a PCI device");
  info_.struct_size = sizeof(info_);
  for (uint32_t i = 0; i <= VFIO_PCI_CONFIG_REGION_INDEX && i < di.num_regions; i++) {
    vfio_region_info ri{};
    ri.argsz = sizeof(ri);
    ri.index = i;
    if (ioctl(device_, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0) continue;
    if (i == VFIO_PCI_CONFIG_REGION_INDEX) {
      cfg_off_ = ri.offset;
      cfg_size_ = ri.size;
    } else if (i <= VFIO_PCI_BAR5_REGION_INDEX) {
      bars_[i].off = ri.offset;
      bars_[i].size = ri.size;
      bars_[i].mmap_ok = ri.size && (ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
      if (bars_[i].mmap_ok) info_.num_bars_mappable |= 1u << i;
    }
  }
  if (cfg_size_ < 64) return absl::FailedPreconditionError("no config region");
  vfio_irq_info ii{};
  ii.argsz = sizeof(ii);
  ii.index = VFIO_PCI_MSIX_IRQ_INDEX;
  if (ioctl(device_, VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0) info_.msix_vectors = ii.count;
  uint32_t v = 0;
  CfgRead(0x00, 2, &v); info_.vendor = uint16_t(v);
  CfgRead(0x02, 2, &v); info_.device = uint16_t(v);
  CfgRead(0x2c, 2, &v); info_.subsystem_vendor = uint16_t(v);
  CfgRead(0x2e, 2, &v); info_.subsystem_device = uint16_t(v);
  CfgRead(0x08, 4, &v); info_.revision = uint8_t(v); info_.class_code = v >> 8;
  snprintf(info_.pci_address, sizeof(info_.pci_address), "%s", bdf.c_str());
  return absl::OkStatus();
}

VfioHost::~VfioHost() {
  CloseMsix();
  for (auto& b : bars_)
    if (b.map) munmap(b.map, b.size);
  for (auto& r : regions_) {
    vfio_iommu_type1_dma_unmap um{};
    um.argsz = sizeof(um);
    um.iova = reinterpret_cast<uint64_t>(r.base);
    um.size = r.len;
    if (container_ >= 0) ioctl(container_, VFIO_IOMMU_UNMAP_DMA, &um);
    munmap(r.base, r.len);
  }
  if (device_ >= 0) close(device_);
  if (group_ >= 0) close(group_);
  if (container_ >= 0) close(container_);
}

absl::StatusOr<DmaRegion> VfioHost::MapRegion(uint64_t len) {
  len = (len + 4095) & ~4095ull;
  int fd = memfd_create("npa-conform", MFD_CLOEXEC);
  if (fd < 0) return Errno("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(len)) < 0) {
    close(fd);
    return Errno("ftruncate");
  }
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return Errno("mmap memfd");
  vfio_iommu_type1_dma_map m{};
  m.argsz = sizeof(m);
  m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  m.vaddr = reinterpret_cast<uint64_t>(p);
  m.iova = m.vaddr;  // docs/architecture.md "Memory": a slot's IOVA is its virtual address
  m.size = len;
  if (ioctl(container_, VFIO_IOMMU_MAP_DMA, &m) < 0) {
    absl::Status s = Errno("VFIO_IOMMU_MAP_DMA (iova == vaddr)");
    munmap(p, len);
    return s;
  }
  DmaRegion r{static_cast<uint8_t*>(p), len};
  regions_.push_back(r);
  return r;
}

int VfioHost::CfgRead(uint32_t off, uint32_t len, uint32_t* val) {
  if (val == nullptr || (len != 1 && len != 2 && len != 4) || uint64_t(off) + len > cfg_size_)
    return -EINVAL;
  *val = 0;
  ssize_t n = pread(device_, val, len, static_cast<off_t>(cfg_off_ + off));
  return n == static_cast<ssize_t>(len) ? 0 : -EIO;
}

int VfioHost::CfgWrite(uint32_t off, uint32_t len, uint32_t val) {
  if ((len != 1 && len != 2 && len != 4) || uint64_t(off) + len > cfg_size_) return -EINVAL;
  ssize_t n = pwrite(device_, &val, len, static_cast<off_t>(cfg_off_ + off));
  return n == static_cast<ssize_t>(len) ? 0 : -EIO;
}

int VfioHost::BarMap(uint32_t bar, volatile void** addr, uint64_t* len) {
  if (bar > 5 || addr == nullptr || len == nullptr || !bars_[bar].mmap_ok) return -EINVAL;
  Bar& b = bars_[bar];
  if (b.map == nullptr) {
    void* p = mmap(nullptr, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, device_,
                   static_cast<off_t>(b.off));
    if (p == MAP_FAILED) return -errno;
    b.map = p;
  }
  *addr = b.map;
  *len = b.size;
  return 0;
}

void VfioHost::CloseMsix() {
  if (!msix_fds_.empty() && device_ >= 0) {
    vfio_irq_set off{};
    off.argsz = sizeof(off);
    off.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    off.index = VFIO_PCI_MSIX_IRQ_INDEX;
    ioctl(device_, VFIO_DEVICE_SET_IRQS, &off);
  }
  for (int fd : msix_fds_) close(fd);
  msix_fds_.clear();
}

int VfioHost::MsixSetup(uint32_t nvec, int* efds) {
  CloseMsix();
  if (nvec == 0) return 0;
  if (efds == nullptr || nvec > info_.msix_vectors) return -EINVAL;
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + sizeof(int) * nvec);
  auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  set->index = VFIO_PCI_MSIX_IRQ_INDEX;
  set->start = 0;
  set->count = nvec;
  for (uint32_t i = 0; i < nvec; i++) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
      int e = -errno;
      for (int f : msix_fds_) close(f);
      msix_fds_.clear();
      return e;
    }
    msix_fds_.push_back(fd);
  }
  std::memcpy(set->data, msix_fds_.data(), sizeof(int) * nvec);
  if (ioctl(device_, VFIO_DEVICE_SET_IRQS, set) < 0) {
    int e = -errno;
    for (int f : msix_fds_) close(f);
    msix_fds_.clear();
    return e;
  }
  for (uint32_t i = 0; i < nvec; i++) efds[i] = msix_fds_[i];
  return 0;
}

absl::Status VfioHost::Reset() {
  if (ioctl(device_, VFIO_DEVICE_RESET) < 0) return Errno("VFIO_DEVICE_RESET");
  return absl::OkStatus();
}

}  // namespace npa::conform
