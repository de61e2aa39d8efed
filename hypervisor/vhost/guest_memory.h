// hypervisor/vhost/guest_memory.h — a guest's memory regions as the agent maps
// them (vhost-user SET_MEM_TABLE), and bounds-checked address translation.
//
//   NPA_ASSIGN_OR_RETURN(auto mem, GuestMemory::Map(regions, std::move(fds), "g1"));
//   uint32_t hint = 0;
//   uint8_t* p = mem->GpaToHost(desc.addr, desc.len, &hint);  // nullptr: outside
//
// Every translation checks, overflow-safe, that [addr, addr+len) lies inside
// ONE region; a buffer straddling two regions is rejected even if they are
// adjacent (they are separate mappings on our side). The caller keeps the
// region hint (last region hit) so that a GuestMemory shared by the control
// thread and the dataplane has no mutable state. Immutable after creation;
// destroying it unmaps what Map() mapped.
#ifndef NPA_HYPERVISOR_VHOST_GUEST_MEMORY_H_
#define NPA_HYPERVISOR_VHOST_GUEST_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "include/npa/vhost_user.h"

namespace npa::agent {

class GuestMemory {
 public:
  struct Region {
    uint64_t gpa;    // guest physical address (descriptors use these)
    uint64_t uva;    // front end's virtual address (SET_VRING_ADDR uses these)
    uint64_t size;
    uint8_t* host;   // our mapping of gpa
  };

  // Validates and mmaps the regions: 1..8 regions, fds.size() == regions.size(),
  // non-zero sizes, no overflow of gpa+size, uva+size, mmap_offset+size, no
  // two regions overlapping in gpa or uva space, each fd a regular file (memfd,
  // hugetlbfs, tmpfs) at least mmap_offset+size long, so no access through the
  // mapping can fault with SIGBUS at creation time. `who` names the guest in
  // errors.
  //
  // A front end that shrinks its file later still makes our next access
  // SIGBUS. require_shrink_seal closes that hole for front ends that seal
  // their memfds (F_SEAL_SHRINK, as npa's shell can): unsealed fds are then
  // rejected. Off by default because DPDK and QEMU do not seal.
  //
  // Trust (docs/architecture.md, issue 9): the regions' sizes together may
  // not exceed max_bytes (kResourceExhausted naming the total and the cap:
  // the agent's --max-guest-memory). Each fd must be a memfd, a tmpfs file or
  // a hugetlbfs file (kInvalidArgument otherwise). That is decided first by
  // fcntl(F_GET_SEALS), which the kernel answers from the inode without
  // calling into the file system and fails (EINVAL) for every other file;
  // only then fstatfs/fstat/mmap, which on a FUSE-backed fd would wait for
  // the FUSE daemon (a guest could make the agent hang that way).
  static absl::StatusOr<std::shared_ptr<const GuestMemory>> Map(
      std::span<const npa_vhost_memory_region> regions, std::vector<UniqueFd> fds,
      std::string_view who, bool require_shrink_seal = false, uint64_t max_bytes = UINT64_MAX);

  // Over memory the caller owns (tests, fuzzers); same checks except the fd
  // and mapping ones. Regions' host pointers must stay valid for its lifetime.
  static absl::StatusOr<std::shared_ptr<const GuestMemory>> FromRegions(std::vector<Region> regions);

  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Host pointer for guest physical [gpa, gpa+len), or nullptr if that range
  // is not inside one region. *hint: index of the region to try first,
  // updated on a hit. len 0 still requires gpa inside a region.
  uint8_t* GpaToHost(uint64_t gpa, uint64_t len, uint32_t* hint) const {
    const uint32_t h = *hint;
    if (h < regions_.size()) {
      const Region& r = regions_[h];
      const uint64_t off = gpa - r.gpa;  // wraps to huge when gpa < r.gpa
      if (off < r.size && len <= r.size - off) return r.host + off;
    }
    return GpaToHostSlow(gpa, len, hint);
  }
  // GpaToHost over one burst: the hinted region's bounds sit in the
  // caller's locals. Stores into guest memory between two lookups (frame
  // copies, used elements) may alias regions_ as far as the compiler
  // knows, so GpaToHost reloads the vector and the region every call.
  // Same answers as GpaToHost with the same hint; hint() is the hint to
  // keep. The GuestMemory must outlive it and not change under it.
  class Lookup {
   public:
    Lookup(const GuestMemory& m, uint32_t hint) : m_(&m) { Reset(hint); }
    uint8_t* ToHost(uint64_t gpa, uint64_t len) {
      const uint64_t off = gpa - gpa_;  // wraps to huge when gpa < gpa_
      if (off < size_ && len <= size_ - off) [[likely]] return host_ + off;
      uint8_t* p = m_->GpaToHostSlow(gpa, len, &hint_);
      Reset(hint_);
      return p;
    }
    uint32_t hint() const { return hint_; }
    // After the caller used hint() with GpaToHost directly (which moves it
    // only on a miss: usually nothing to reload).
    void Sync(uint32_t hint) {
      if (hint != hint_) [[unlikely]] Reset(hint);
    }

   private:
    void Reset(uint32_t hint) {
      hint_ = hint;
      // No region at the hint: size 0 sends every lookup to the slow path.
      const bool ok = hint < m_->regions_.size();
      gpa_ = ok ? m_->regions_[hint].gpa : 0;
      size_ = ok ? m_->regions_[hint].size : 0;
      host_ = ok ? m_->regions_[hint].host : nullptr;
    }
    const GuestMemory* m_;
    uint32_t hint_;
    uint64_t gpa_, size_;
    uint8_t* host_;
  };

  // Same for the front end's virtual addresses (ring addresses).
  uint8_t* UvaToHost(uint64_t uva, uint64_t len) const;

  std::span<const Region> regions() const { return regions_; }

 private:
  struct Mapping {
    void* base;
    size_t len;
  };
  GuestMemory() = default;
  static absl::Status CheckLayout(std::span<const Region> regions);
  uint8_t* GpaToHostSlow(uint64_t gpa, uint64_t len, uint32_t* hint) const;

  std::vector<Region> regions_;
  std::vector<Mapping> mappings_;  // empty for FromRegions
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_GUEST_MEMORY_H_
