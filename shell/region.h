// shell/region.h — one shared memory region for rings and packet buffers.
//
//   NPA_ASSIGN_OR_RETURN(Region r, Region::Create(64 << 20, /*try_huge=*/true));
//   void* p = r.base();          // IOVA == this address (buf.h)
//   send r.fd() in SET_MEM_TABLE (mmap_offset 0) and to the agent for VF DMA.
//
// The region is a memfd (hugetlb 2 MB pages when the kernel has them reserved,
// plain 4K shmem otherwise), mapped MAP_SHARED and pre-faulted so that the
// first packet never takes a page fault. Its size is rounded up to the page
// size in use, because a peer mmap()s the fd with that size. Once sized, the
// memfd is sealed with F_SEAL_SHRINK | F_SEAL_GROW (writes stay allowed): the
// agent maps it and requires the shrink seal from control-protocol guests,
// because a shrinking memfd would SIGBUS the agent.
#ifndef NPA_SHELL_REGION_H_
#define NPA_SHELL_REGION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace npa::shell {

class Region {
 public:
  // try_huge: attempt MFD_HUGETLB|MFD_HUGE_2MB first and fall back to 4K
  // pages on any failure (no pages reserved, no hugetlb support).
  static absl::StatusOr<Region> Create(size_t size, bool try_huge, const char* name = "npa-shell");

  Region() = default;
  Region(Region&& o) noexcept;
  Region& operator=(Region&& o) noexcept;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  ~Region();

  uint8_t* base() const { return base_; }
  uint64_t iova() const { return reinterpret_cast<uintptr_t>(base_); }
  size_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  bool hugepages() const { return huge_; }
  size_t page_size() const { return huge_ ? (2u << 20) : 4096u; }
  bool Contains(uint64_t addr, uint64_t len) const {
    return addr >= iova() && len <= size_ && addr - iova() <= size_ - len;
  }

 private:
  UniqueFd fd_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool huge_ = false;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_REGION_H_
