#include "shell/region.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "common/log.h"
#include "common/status_macros.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << MFD_HUGE_SHIFT)
#endif

namespace npa::shell {
namespace {

constexpr size_t kHugePage = 2u << 20;

constexpr int kRegionSeals = F_SEAL_SHRINK | F_SEAL_GROW;

size_t RoundUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

// One attempt with the given memfd flags and page size; no logging.
absl::StatusOr<std::pair<UniqueFd, uint8_t*>> TryMap(const char* name, unsigned flags,
                                                     size_t size) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags));
  if (!fd) return ErrnoError(errno, "memfd_create(", name, ")");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    return ErrnoError(errno, "ftruncate memfd to ", size, " bytes");
  // The agent maps this fd; if it could shrink, the agent's next access past
  // the new EOF would SIGBUS it, so it refuses unsealed memory from shells.
  // Sealed before mmap so no mapping ever sees a different size. Writes stay
  // allowed (F_SEAL_WRITE would forbid the shared mapping we need).
  // hugetlbfs memfds accept seals since Linux 4.16.
  if (::fcntl(fd.get(), F_ADD_SEALS, kRegionSeals) < 0)
    return ErrnoError(errno, "seal memfd (F_SEAL_SHRINK | F_SEAL_GROW)");
  // MAP_POPULATE: hugetlb reserves pages at mmap time (ENOMEM when the pool is
  // short, instead of SIGBUS on first touch); for shmem it pre-faults.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoError(errno, "mmap memfd of ", size, " bytes");
  return std::make_pair(std::move(fd), static_cast<uint8_t*>(p));
}

}  // namespace

absl::StatusOr<Region> Region::Create(size_t size, bool try_huge, const char* name) {
  if (size == 0) return absl::InvalidArgumentError("region size 0");
  Region r;
  if (try_huge) {
    size_t hsize = RoundUp(size, kHugePage);
    auto m = TryMap(name, MFD_HUGETLB | MFD_HUGE_2MB, hsize);
    if (m.ok()) {
      r.fd_ = std::move(m->first);
      r.base_ = m->second;
      r.size_ = hsize;
      r.huge_ = true;
      return r;
    }
    NPA_LOG(Info, "shell: no 2 MB hugepages for a %zu-byte region (%s); using 4K pages", hsize,
            std::string(m.status().message()).c_str());
  }
  size_t psize = RoundUp(size, 4096);
  NPA_ASSIGN_OR_RETURN(auto m, TryMap(name, 0, psize));
  r.fd_ = std::move(m.first);
  r.base_ = m.second;
  r.size_ = psize;
  r.huge_ = false;
  return r;
}

Region::Region(Region&& o) noexcept
    : fd_(std::move(o.fd_)),
      base_(std::exchange(o.base_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      huge_(o.huge_) {}

Region& Region::operator=(Region&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, size_);
    fd_ = std::move(o.fd_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    huge_ = o.huge_;
  }
  return *this;
}

Region::~Region() {
  if (base_) ::munmap(base_, size_);
}

}  // namespace npa::shell
