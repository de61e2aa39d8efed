// hypervisor/vf/guest_regions.h — a guest's announced shared-memory regions
// (control.proto RegionAnnounce), checked and mapped into the agent so they
// can be DMA-mapped into a VF's container later (docs/architecture.md "Memory":
// the same buffers serve the emulated path and the VF path).
//
//   NPA_ASSIGN_OR_RETURN(GuestRegions r, GuestRegions::FromAnnounce(env.regions(), frame.fds));
//   for (const auto& m : r.regions()) container.MapDma(m.vaddr(), m.iova, m.size);
//
// Checks (everything comes from the guest, docs/architecture.md "Trust"), each rejection
// naming the region index and the offending value:
//   - 1..kMaxRegions regions, exactly one fd per region;
//   - size > 0; iova, size, fd_offset 4 KiB aligned;
//   - iova + size and fd_offset + size do not wrap; iova + size <= 2^48 (the
//     IOMMU's address width in the lab, and x86-64's user VA width);
//   - regions do not overlap in IOVA space;
//   - each fd is a regular file (memfd, hugetlbfs, tmpfs) of at least
//     fd_offset + size bytes (fstat), so a DMA never faults on a hole past EOF;
//   - each fd carries F_SEAL_SHRINK (a memfd made with MFD_ALLOW_SEALING, as
//     the shell's Region is): otherwise the guest could ftruncate it smaller
//     after the announce and the agent's next access would SIGBUS the whole
//     agent. Checked before the size, since the seal is what keeps it valid.
// Then each region is mmapped MAP_SHARED read/write; a failing mmap (e.g. a
// hugetlb memfd with offsets not aligned to its page size) is an error naming
// the region. Errors are kInvalidArgument (bad input) or the errno's code.
// Ownership: the mappings live as long as the GuestRegions; the fds are closed
// after mapping (the mapping keeps the memory alive).
#ifndef NPA_HYPERVISOR_VF_GUEST_REGIONS_H_
#define NPA_HYPERVISOR_VF_GUEST_REGIONS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "include/npa/control.pb.h"

namespace npa::agent {

inline constexpr size_t kMaxRegions = 8;
inline constexpr uint64_t kMaxIova = 1ull << 48;

struct GuestRegion {
  uint64_t iova = 0;
  uint64_t size = 0;
  void* addr = nullptr;  // the agent's mapping
  uint64_t vaddr() const { return reinterpret_cast<uint64_t>(addr); }
};

class GuestRegions {
 public:
  GuestRegions() = default;
  ~GuestRegions();
  GuestRegions(GuestRegions&& o) noexcept;
  GuestRegions& operator=(GuestRegions&& o) noexcept;
  GuestRegions(const GuestRegions&) = delete;
  GuestRegions& operator=(const GuestRegions&) = delete;

  // `fds` must be the frame's fds (one per region, in order); they are
  // consumed (closed) whether or not the announce is accepted.
  static absl::StatusOr<GuestRegions> FromAnnounce(const control::RegionAnnounce& a,
                                                   std::vector<UniqueFd>& fds);

  // Checks only (no fstat, no mmap): pure, for tests and the fuzzer.
  static absl::Status CheckLayout(const control::RegionAnnounce& a, size_t num_fds);

  const std::vector<GuestRegion>& regions() const { return regions_; }
  bool empty() const { return regions_.empty(); }
  uint64_t total_bytes() const;

 private:
  void Release();
  std::vector<GuestRegion> regions_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VF_GUEST_REGIONS_H_
