#include "hypervisor/vhost/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace npa::agent {

namespace {

// a + b without wrapping past 2^64.
bool AddOverflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }

}  // namespace

absl::Status GuestMemory::CheckLayout(std::span<const Region> regions) {
  if (regions.empty() || regions.size() > NPA_VHOST_USER_MAX_REGIONS) {
    return absl::InvalidArgumentError(
        absl::StrCat(regions.size(), " memory regions (must be 1..", NPA_VHOST_USER_MAX_REGIONS, ")"));
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    const Region& r = regions[i];
    uint64_t end;
    if (r.size == 0) return absl::InvalidArgumentError(absl::StrCat("region ", i, " has size 0"));
    if (AddOverflows(r.gpa, r.size, &end) || AddOverflows(r.uva, r.size, &end)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %u: gpa 0x%x / uva 0x%x + size 0x%x overflows", i, r.gpa, r.uva, r.size));
    }
    for (size_t j = 0; j < i; ++j) {
      const Region& o = regions[j];
      // Both ends are overflow-free here, so half-open interval tests are exact.
      if (r.gpa < o.gpa + o.size && o.gpa < r.gpa + r.size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("region %u (gpa 0x%x+0x%x) overlaps region %u (gpa 0x%x+0x%x)", i,
                            r.gpa, r.size, j, o.gpa, o.size));
      }
      if (r.uva < o.uva + o.size && o.uva < r.uva + r.size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("region %u (uva 0x%x+0x%x) overlaps region %u (uva 0x%x+0x%x)", i,
                            r.uva, r.size, j, o.uva, o.size));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::Map(
    std::span<const npa_vhost_memory_region> regions, std::vector<UniqueFd> fds,
    std::string_view who, bool require_shrink_seal, uint64_t max_bytes) {
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("guest '", std::string(who), "' memory table: ", s.message()));
  };
  if (fds.size() != regions.size()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(regions.size(), " regions but ", fds.size(), " fds")));
  }
  std::vector<Region> layout;
  for (const auto& r : regions) layout.push_back({r.guest_phys_addr, r.userspace_addr, r.memory_size, nullptr});
  if (absl::Status s = CheckLayout(layout); !s.ok()) return fail(s);

  uint64_t total = 0;
  for (const auto& r : regions) {
    if (AddOverflows(total, r.memory_size, &total)) total = UINT64_MAX;
  }
  if (total > max_bytes) {
    return fail(absl::ResourceExhaustedError(absl::StrFormat(
        "%u regions total %u bytes, over this guest's cap of %u bytes (--max-guest-memory)",
        regions.size(), total, max_bytes)));
  }
  // Every fd's kind first, before any call that could block on it.
  for (size_t i = 0; i < regions.size(); ++i) {
    if (fcntl(fds[i].get(), F_GET_SEALS) < 0) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "region ", i, " fd is not a memfd, tmpfs or hugetlbfs file (F_GET_SEALS: ",
          strerror(errno), ")")));
    }
    struct statfs sfs;
    if (fstatfs(fds[i].get(), &sfs) != 0) return fail(ErrnoError(errno, "fstatfs of region ", i, " fd"));
    if (sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC) {
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "region %u fd is on a file system of type 0x%x, not tmpfs/memfd or hugetlbfs", i,
          static_cast<uint64_t>(sfs.f_type))));
    }
  }
  std::shared_ptr<GuestMemory> mem(new GuestMemory());
  for (size_t i = 0; i < regions.size(); ++i) {
    const npa_vhost_memory_region& r = regions[i];
    uint64_t map_len;
    if (AddOverflows(r.mmap_offset, r.memory_size, &map_len) || map_len > SIZE_MAX / 2) {
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "region %u: mmap_offset 0x%x + size 0x%x overflows", i, r.mmap_offset, r.memory_size)));
    }
    struct stat st;
    if (fstat(fds[i].get(), &st) != 0) return fail(ErrnoError(errno, "fstat of region ", i, " fd"));
    // Only files have a size we can check against; mapping anything else
    // (devices, sockets) is not what a front end means to share.
    if (!S_ISREG(st.st_mode)) {
      return fail(absl::InvalidArgumentError(absl::StrCat("region ", i, " fd is not a regular/memfd file")));
    }
    // A mapping past EOF would SIGBUS on first touch: refuse it up front.
    if (static_cast<uint64_t>(st.st_size) < map_len) {
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "region %u: fd holds 0x%x bytes, needs mmap_offset+size = 0x%x", i, st.st_size, map_len)));
    }
    if (require_shrink_seal) {
      const int seals = fcntl(fds[i].get(), F_GET_SEALS);
      if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        return fail(absl::InvalidArgumentError(absl::StrCat(
            "region ", i, " fd is not sealed against shrinking (F_SEAL_SHRINK required)")));
      }
    }
    // Map from file offset 0 so mmap_offset need not be page aligned (QEMU
    // and DPDK both send offsets that are only region-aligned).
    void* base = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i].get(), 0);
    if (base == MAP_FAILED) return fail(ErrnoError(errno, "mmap of region ", i, " (", map_len, " bytes)"));
    mem->mappings_.push_back({base, static_cast<size_t>(map_len)});
    layout[i].host = static_cast<uint8_t*>(base) + r.mmap_offset;
  }
  mem->regions_ = std::move(layout);
  return std::shared_ptr<const GuestMemory>(std::move(mem));
}

absl::StatusOr<std::shared_ptr<const GuestMemory>> GuestMemory::FromRegions(std::vector<Region> regions) {
  NPA_RETURN_IF_ERROR(CheckLayout(regions));
  std::shared_ptr<GuestMemory> mem(new GuestMemory());
  mem->regions_ = std::move(regions);
  return std::shared_ptr<const GuestMemory>(std::move(mem));
}

GuestMemory::~GuestMemory() {
  for (const Mapping& m : mappings_) munmap(m.base, m.len);
}

uint8_t* GuestMemory::GpaToHostSlow(uint64_t gpa, uint64_t len, uint32_t* hint) const {
  for (uint32_t i = 0; i < regions_.size(); ++i) {
    const Region& r = regions_[i];
    const uint64_t off = gpa - r.gpa;
    if (off < r.size && len <= r.size - off) {
      *hint = i;
      return r.host + off;
    }
  }
  return nullptr;
}

uint8_t* GuestMemory::UvaToHost(uint64_t uva, uint64_t len) const {
  for (const Region& r : regions_) {
    const uint64_t off = uva - r.uva;
    if (off < r.size && len <= r.size - off) return r.host + off;
  }
  return nullptr;
}

}  // namespace npa::agent
