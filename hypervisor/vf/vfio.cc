// hypervisor/vf/vfio.cc — see vfio.h. VFIO UAPI: include/uapi/linux/vfio.h
// (type1 IOMMU, vfio-pci region and irq indices).
#include "hypervisor/vf/vfio.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent::vf {
namespace {

constexpr uint64_t kPage = 4096;

absl::StatusOr<UniqueFd> OpenRw(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open ", path);
  return fd;
}

// VFIO_IOMMU_UNMAP_DMA on a container fd (the container's own, or a
// DmaRegion's dup of it).
absl::Status UnmapDmaOn(int fd, const std::string& path, uint64_t iova, uint64_t size) {
  struct vfio_iommu_type1_dma_unmap u;
  std::memset(&u, 0, sizeof(u));
  u.argsz = sizeof(u);
  u.iova = iova;
  u.size = size;
  if (::ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u) != 0)
    return ErrnoError(errno, absl::StrFormat("VFIO_IOMMU_UNMAP_DMA iova=0x%x size=0x%x on %s", iova, size, path));
  // The kernel reports how much it unmapped; less means the range was not
  // (entirely) mapped, which is a caller bug worth surfacing.
  if (u.size != size)
    return absl::NotFoundError(absl::StrFormat(
        "VFIO_IOMMU_UNMAP_DMA iova=0x%x: unmapped 0x%x of 0x%x bytes on %s", iova, u.size, size, path));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckDmaRange(uint64_t vaddr, uint64_t iova, uint64_t size) {
  if (size == 0) return absl::InvalidArgumentError("DMA range: size is 0");
  if ((vaddr | iova | size) % kPage != 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "DMA range vaddr=0x%x iova=0x%x size=0x%x is not 4 KiB aligned", vaddr, iova, size));
  if (vaddr + size < vaddr || iova + size < iova)
    return absl::InvalidArgumentError(
        absl::StrFormat("DMA range vaddr=0x%x iova=0x%x size=0x%x wraps around", vaddr, iova, size));
  return absl::OkStatus();
}

absl::Status CheckPciName(absl::string_view bdf) {
  bool ok = !bdf.empty() && bdf.size() < 32 && bdf != "." && bdf != "..";
  for (char ch : bdf) ok = ok && (absl::ascii_isxdigit(static_cast<unsigned char>(ch)) || ch == ':' || ch == '.');
  if (!ok)
    return absl::InvalidArgumentError(
        absl::StrCat("PCI address '", bdf, "' is malformed (want DDDD:BB:DD.F, e.g. 0000:03:00.0)"));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- container

absl::StatusOr<VfioContainer> VfioContainer::Open(std::string path) {
  VfioContainer c;
  c.path_ = std::move(path);
  NPA_ASSIGN_OR_RETURN(c.fd_, OpenRw(c.path_));
  int api = ::ioctl(c.fd_.get(), VFIO_GET_API_VERSION);
  if (api < 0) return ErrnoError(errno, "VFIO_GET_API_VERSION on ", c.path_);
  if (api != VFIO_API_VERSION)
    return absl::FailedPreconditionError(
        absl::StrCat("VFIO_GET_API_VERSION on ", c.path_, " = ", api, ", need ", VFIO_API_VERSION));
  // v2 has the stricter unmap semantics (no splitting of a mapping).
  for (int type : {VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU}) {
    int r = ::ioctl(c.fd_.get(), VFIO_CHECK_EXTENSION, type);
    if (r < 0) return ErrnoError(errno, "VFIO_CHECK_EXTENSION(", type, ") on ", c.path_);
    if (r == 1) {
      c.iommu_type_ = type;
      break;
    }
  }
  if (c.iommu_type_ == 0)
    return absl::FailedPreconditionError(
        absl::StrCat(c.path_, ": no type1 IOMMU (VFIO_CHECK_EXTENSION says neither TYPE1v2 nor TYPE1)"));
  return c;
}

absl::Status VfioContainer::MapDma(uint64_t vaddr, uint64_t iova, uint64_t size, bool device_writable) {
  NPA_RETURN_IF_ERROR(CheckDmaRange(vaddr, iova, size));
  if (!iommu_set_)
    return absl::FailedPreconditionError(absl::StrCat(path_, ": MAP_DMA before a group is attached"));
  struct vfio_iommu_type1_dma_map m;
  std::memset(&m, 0, sizeof(m));
  m.argsz = sizeof(m);
  m.flags = VFIO_DMA_MAP_FLAG_READ | (device_writable ? VFIO_DMA_MAP_FLAG_WRITE : 0);
  m.vaddr = vaddr;
  m.iova = iova;
  m.size = size;
  if (::ioctl(fd_.get(), VFIO_IOMMU_MAP_DMA, &m) != 0)
    return ErrnoError(errno, absl::StrFormat("VFIO_IOMMU_MAP_DMA vaddr=0x%x iova=0x%x size=0x%x on %s",
                                             vaddr, iova, size, path_));
  return absl::OkStatus();
}

absl::Status VfioContainer::UnmapDma(uint64_t iova, uint64_t size) {
  NPA_RETURN_IF_ERROR(CheckDmaRange(0, iova, size));
  if (!iommu_set_)
    return absl::FailedPreconditionError(absl::StrCat(path_, ": UNMAP_DMA before a group is attached"));
  return UnmapDmaOn(fd_.get(), path_, iova, size);
}

absl::StatusOr<DmaRegion> VfioContainer::MapMemfdRegion(uint64_t size, const char* name) {
  if (size == 0 || size > (1ull << 40))
    return absl::InvalidArgumentError(absl::StrCat("DMA region '", name, "': size ", size));
  if (!iommu_set_)
    return absl::FailedPreconditionError(absl::StrCat(path_, ": DMA region before a group is attached"));
  size = (size + kPage - 1) & ~(kPage - 1);
  UniqueFd mfd(::memfd_create(name, MFD_CLOEXEC));
  if (!mfd) return ErrnoError(errno, "memfd_create ", name);
  if (::ftruncate(mfd.get(), static_cast<off_t>(size)) != 0)
    return ErrnoError(errno, "ftruncate memfd ", name, " to ", size);
  // MAP_POPULATE: fault the pages in now rather than page by page under the
  // pinning MAP_DMA does anyway.
  UniqueFd dup(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!dup) return ErrnoError(errno, "dup of ", path_);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd.get(), 0);
  if (p == MAP_FAILED) return ErrnoError(errno, "mmap memfd ", name);
  const uint64_t va = reinterpret_cast<uintptr_t>(p);
  absl::Status st = MapDma(va, /*iova=*/va, size);
  if (!st.ok()) {
    ::munmap(p, size);
    return st;
  }
  // The memfd itself can go: the mapping keeps the memory.
  DmaRegion r;
  r.container_ = std::move(dup);
  r.container_path_ = path_;
  r.addr_ = static_cast<uint8_t*>(p);
  r.size_ = size;
  return r;
}

// --------------------------------------------------------------- DMA region

DmaRegion::DmaRegion(DmaRegion&& o) noexcept
    : container_(std::move(o.container_)),
      container_path_(std::move(o.container_path_)),
      addr_(std::exchange(o.addr_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

DmaRegion& DmaRegion::operator=(DmaRegion&& o) noexcept {
  if (this != &o) {
    absl::Status st = Unmap();
    if (!st.ok()) NPA_LOG(Error, "DMA region: %s", std::string(st.message()).c_str());
    container_ = std::move(o.container_);
    container_path_ = std::move(o.container_path_);
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

DmaRegion::~DmaRegion() {
  absl::Status st = Unmap();
  if (!st.ok()) NPA_LOG(Error, "DMA region: %s", std::string(st.message()).c_str());
}

absl::Status DmaRegion::Unmap() {
  if (addr_ == nullptr) return absl::OkStatus();
  absl::Status st = UnmapDmaOn(container_.get(), container_path_, iova(), size_);
  // The process mapping goes either way: a failed unmap leaves the IOMMU
  // entry (and the pinned pages) to the container's close.
  ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
  container_.reset();
  return st;
}

// -------------------------------------------------------------------- group

absl::StatusOr<int> VfioGroup::GroupOf(absl::string_view bdf, absl::string_view sysfs_root) {
  NPA_RETURN_IF_ERROR(CheckPciName(bdf));
  const std::string path = absl::StrCat(sysfs_root, "/bus/pci/devices/", bdf, "/iommu_group");
  char link[512];
  ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  if (n < 0 && errno == ENOENT)
    return absl::FailedPreconditionError(absl::StrCat(bdf, " has no IOMMU group (no IOMMU, or the function is absent)"));
  if (n < 0) return ErrnoError(errno, "readlink ", path);
  const absl::string_view target(link, static_cast<size_t>(n));
  const size_t slash = target.rfind('/');
  int id = -1;
  if (!absl::SimpleAtoi(slash == absl::string_view::npos ? target : target.substr(slash + 1), &id) || id < 0)
    return absl::InvalidArgumentError(absl::StrCat(path, " -> '", target, "' is not a group number"));
  return id;
}

absl::StatusOr<VfioGroup> VfioGroup::Open(int id, std::string dev_dir) {
  if (id < 0) return absl::InvalidArgumentError(absl::StrCat("IOMMU group ", id, " is negative"));
  VfioGroup g;
  g.id_ = id;
  g.path_ = absl::StrCat(dev_dir, "/", id);
  NPA_ASSIGN_OR_RETURN(g.fd_, OpenRw(g.path_));
  return g;
}

absl::StatusOr<bool> VfioGroup::Viable() const {
  struct vfio_group_status st;
  std::memset(&st, 0, sizeof(st));
  st.argsz = sizeof(st);
  if (::ioctl(fd_.get(), VFIO_GROUP_GET_STATUS, &st) != 0)
    return ErrnoError(errno, "VFIO_GROUP_GET_STATUS on ", path_);
  return (st.flags & VFIO_GROUP_FLAGS_VIABLE) != 0;
}

absl::Status VfioGroup::AttachTo(VfioContainer& c) {
  NPA_ASSIGN_OR_RETURN(bool viable, Viable());
  if (!viable)
    return absl::FailedPreconditionError(absl::StrCat(
        "IOMMU group ", id_, " (", path_, ") is not viable: bind every function of the group to vfio-pci"));
  int cfd = c.fd();
  if (::ioctl(fd_.get(), VFIO_GROUP_SET_CONTAINER, &cfd) != 0)
    return ErrnoError(errno, "VFIO_GROUP_SET_CONTAINER ", path_, " -> ", c.path());
  // The IOMMU model is chosen once per container, after its first group.
  if (!c.iommu_set_) {
    if (::ioctl(c.fd(), VFIO_SET_IOMMU, c.iommu_type_) != 0)
      return ErrnoError(errno, "VFIO_SET_IOMMU(", c.iommu_type_, ") on ", c.path(), " for group ", id_);
    c.iommu_set_ = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<VfioDevice> VfioGroup::OpenDevice(absl::string_view bdf) {
  NPA_RETURN_IF_ERROR(CheckPciName(bdf));
  VfioDevice d;
  d.name_ = std::string(bdf);
  int fd = ::ioctl(fd_.get(), VFIO_GROUP_GET_DEVICE_FD, d.name_.c_str());
  if (fd < 0) return ErrnoError(errno, "VFIO_GROUP_GET_DEVICE_FD(", bdf, ") on ", path_);
  d.fd_.reset(fd);
  struct vfio_device_info info;
  std::memset(&info, 0, sizeof(info));
  info.argsz = sizeof(info);
  if (::ioctl(fd, VFIO_DEVICE_GET_INFO, &info) != 0) return ErrnoError(errno, "VFIO_DEVICE_GET_INFO on ", bdf);
  d.flags_ = info.flags;
  d.num_regions_ = info.num_regions;
  d.num_irqs_ = info.num_irqs;
  return d;
}

// ----------------------------------------------------------------- function

absl::StatusOr<VfioFunction> VfioFunction::Open(absl::string_view bdf, const VfioOpenOptions& opts) {
  NPA_ASSIGN_OR_RETURN(int gid, VfioGroup::GroupOf(bdf, opts.sysfs_root));
  NPA_ASSIGN_OR_RETURN(VfioContainer c, VfioContainer::Open(opts.dev_dir + "/vfio"));
  absl::StatusOr<VfioGroup> g = VfioGroup::Open(gid, opts.dev_dir);
  if (!g.ok())
    return absl::Status(g.status().code(),
                        absl::StrCat("open IOMMU group ", gid, " of ", bdf, ": ", g.status().message(),
                                     // EBUSY: a group node opens once; a guest that was
                                     // force-detached may still hold the device fd.
                                     absl::IsUnavailable(g.status())
                                         ? " (group busy: a previous holder still has it open)"
                                         : ""));
  NPA_RETURN_IF_ERROR(g->AttachTo(c));
  NPA_ASSIGN_OR_RETURN(VfioDevice d, g->OpenDevice(bdf));
  return VfioFunction(std::move(c), std::move(*g), std::move(d));
}

// ------------------------------------------------------------------- device

bool RegionInfo::readable() const { return flags & VFIO_REGION_INFO_FLAG_READ; }
bool RegionInfo::writable() const { return flags & VFIO_REGION_INFO_FLAG_WRITE; }
bool RegionInfo::mmappable() const { return flags & VFIO_REGION_INFO_FLAG_MMAP; }

bool VfioDevice::is_pci() const { return flags_ & VFIO_DEVICE_FLAGS_PCI; }
bool VfioDevice::can_reset() const { return flags_ & VFIO_DEVICE_FLAGS_RESET; }

absl::StatusOr<RegionInfo> VfioDevice::GetRegionInfo(uint32_t index) const {
  if (index >= num_regions_)
    return absl::OutOfRangeError(absl::StrCat(name_, ": region ", index, " >= num_regions ", num_regions_));
  struct vfio_region_info ri;
  std::memset(&ri, 0, sizeof(ri));
  // argsz = the fixed part only: we do not read capability chains here; the
  // kernel then reports the bigger size it would need, which we ignore.
  ri.argsz = sizeof(ri);
  ri.index = index;
  if (::ioctl(fd_.get(), VFIO_DEVICE_GET_REGION_INFO, &ri) != 0)
    return ErrnoError(errno, "VFIO_DEVICE_GET_REGION_INFO(", index, ") on ", name_);
  return RegionInfo{index, ri.flags, ri.size, ri.offset};
}

absl::StatusOr<IrqInfo> VfioDevice::GetIrqInfo(uint32_t index) const {
  if (index >= num_irqs_)
    return absl::OutOfRangeError(absl::StrCat(name_, ": irq index ", index, " >= num_irqs ", num_irqs_));
  struct vfio_irq_info ii;
  std::memset(&ii, 0, sizeof(ii));
  ii.argsz = sizeof(ii);
  ii.index = index;
  if (::ioctl(fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &ii) != 0)
    return ErrnoError(errno, "VFIO_DEVICE_GET_IRQ_INFO(", index, ") on ", name_);
  return IrqInfo{index, ii.flags, ii.count};
}

absl::StatusOr<VfioDevice::IrqCounts> VfioDevice::GetIrqCounts() const {
  IrqCounts c;
  auto count = [&](uint32_t index, uint32_t& out) -> absl::Status {
    if (index >= num_irqs_) return absl::OkStatus();
    NPA_ASSIGN_OR_RETURN(IrqInfo ii, GetIrqInfo(index));
    out = ii.count;
    return absl::OkStatus();
  };
  NPA_RETURN_IF_ERROR(count(VFIO_PCI_MSIX_IRQ_INDEX, c.msix));
  NPA_RETURN_IF_ERROR(count(VFIO_PCI_ERR_IRQ_INDEX, c.err));
  NPA_RETURN_IF_ERROR(count(VFIO_PCI_REQ_IRQ_INDEX, c.req));
  return c;
}

absl::Status VfioDevice::CheckRange(const RegionInfo& r, uint64_t off, size_t len, const char* what) const {
  if (len == 0 || off > r.size || len > r.size - off)
    return absl::OutOfRangeError(absl::StrFormat("%s: %s of %u bytes at 0x%x outside region %u (size 0x%x)",
                                                 name_, what, len, off, r.index, r.size));
  return absl::OkStatus();
}

absl::Status VfioDevice::ReadRegion(uint32_t index, uint64_t off, void* buf, size_t len) const {
  NPA_ASSIGN_OR_RETURN(RegionInfo r, GetRegionInfo(index));
  NPA_RETURN_IF_ERROR(CheckRange(r, off, len, "read"));
  ssize_t n = ::pread(fd_.get(), buf, len, static_cast<off_t>(r.offset + off));
  if (n < 0) return ErrnoError(errno, "pread region ", index, " +", off, " on ", name_);
  if (static_cast<size_t>(n) != len)
    return absl::DataLossError(absl::StrCat(name_, ": short read of region ", index, " +", off));
  return absl::OkStatus();
}

absl::Status VfioDevice::WriteRegion(uint32_t index, uint64_t off, const void* buf, size_t len) {
  NPA_ASSIGN_OR_RETURN(RegionInfo r, GetRegionInfo(index));
  NPA_RETURN_IF_ERROR(CheckRange(r, off, len, "write"));
  ssize_t n = ::pwrite(fd_.get(), buf, len, static_cast<off_t>(r.offset + off));
  if (n < 0) return ErrnoError(errno, "pwrite region ", index, " +", off, " on ", name_);
  if (static_cast<size_t>(n) != len)
    return absl::DataLossError(absl::StrCat(name_, ": short write of region ", index, " +", off));
  return absl::OkStatus();
}

absl::Status VfioDevice::ReadConfig(uint64_t off, void* buf, size_t len) const {
  return ReadRegion(VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

absl::Status VfioDevice::WriteConfig(uint64_t off, const void* buf, size_t len) {
  return WriteRegion(VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

absl::StatusOr<MappedRegion> VfioDevice::MapRegion(uint32_t index) {
  NPA_ASSIGN_OR_RETURN(RegionInfo r, GetRegionInfo(index));
  if (!r.mmappable() || r.size == 0)
    return absl::FailedPreconditionError(absl::StrCat(name_, ": region ", index, " cannot be mmapped"));
  int prot = (r.readable() ? PROT_READ : 0) | (r.writable() ? PROT_WRITE : 0);
  void* p = ::mmap(nullptr, r.size, prot, MAP_SHARED, fd_.get(), static_cast<off_t>(r.offset));
  if (p == MAP_FAILED) return ErrnoError(errno, "mmap region ", index, " of ", name_);
  return MappedRegion(p, r.size);
}

absl::Status VfioDevice::SetIrqEventfds(uint32_t index, uint32_t start, const std::vector<int>& fds) {
  if (fds.empty() || fds.size() > 2048)
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", fds.size(), " eventfds for irq index ", index));
  NPA_ASSIGN_OR_RETURN(IrqInfo ii, GetIrqInfo(index));
  if (start > ii.count || fds.size() > ii.count - start)
    return absl::OutOfRangeError(absl::StrCat(name_, ": vectors ", start, "+", fds.size(), " exceed irq index ",
                                              index, " count ", ii.count));
  std::vector<uint8_t> buf(sizeof(struct vfio_irq_set) + fds.size() * sizeof(int32_t));
  auto* s = reinterpret_cast<struct vfio_irq_set*>(buf.data());
  s->argsz = static_cast<uint32_t>(buf.size());
  s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  s->index = index;
  s->start = start;
  s->count = static_cast<uint32_t>(fds.size());
  std::memcpy(s->data, fds.data(), fds.size() * sizeof(int32_t));
  if (::ioctl(fd_.get(), VFIO_DEVICE_SET_IRQS, s) != 0)
    return ErrnoError(errno, "VFIO_DEVICE_SET_IRQS(index ", index, ", ", fds.size(), " eventfds) on ", name_);
  return absl::OkStatus();
}

absl::Status VfioDevice::DisableIrqs(uint32_t index) {
  struct vfio_irq_set s;
  std::memset(&s, 0, sizeof(s));
  s.argsz = sizeof(s);
  s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
  s.index = index;
  if (::ioctl(fd_.get(), VFIO_DEVICE_SET_IRQS, &s) != 0)
    return ErrnoError(errno, "VFIO_DEVICE_SET_IRQS(disable index ", index, ") on ", name_);
  return absl::OkStatus();
}

absl::Status VfioDevice::TriggerIrq(uint32_t index, uint32_t vector) {
  struct vfio_irq_set s;
  std::memset(&s, 0, sizeof(s));
  s.argsz = sizeof(s);
  s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
  s.index = index;
  s.start = vector;
  s.count = 1;
  if (::ioctl(fd_.get(), VFIO_DEVICE_SET_IRQS, &s) != 0)
    return ErrnoError(errno, "VFIO_DEVICE_SET_IRQS(trigger index ", index, " vector ", vector, ") on ", name_);
  return absl::OkStatus();
}

absl::Status VfioDevice::Reset() {
  if (!can_reset())
    return absl::FailedPreconditionError(absl::StrCat(name_, " has no reset (VFIO_DEVICE_FLAGS_RESET unset)"));
  if (::ioctl(fd_.get(), VFIO_DEVICE_RESET) != 0) return ErrnoError(errno, "VFIO_DEVICE_RESET on ", name_);
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> VfioDevice::Dup() const {
  int fd = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "dup of the VFIO device fd of ", name_);
  return UniqueFd(fd);
}

// ------------------------------------------------------------ mapped region

MappedRegion::MappedRegion(MappedRegion&& o) noexcept
    : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& o) noexcept {
  if (this != &o) {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MappedRegion::~MappedRegion() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

}  // namespace npa::agent::vf
