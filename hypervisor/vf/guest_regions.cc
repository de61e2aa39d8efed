#include "hypervisor/vf/guest_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace npa::agent {
namespace {
constexpr uint64_t kPage = 4096;

absl::Status CheckShrinkSeal(int fd, int i) {
  const int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    const int e = errno;
    return absl::InvalidArgumentError(absl::StrFormat(
        "region %d: memfd not sealed against shrinking (F_SEAL_SHRINK): F_GET_SEALS failed (%s); "
        "announce a memfd created with MFD_ALLOW_SEALING",
        i, strerror(e)));
  }
  if (!(seals & F_SEAL_SHRINK))
    return absl::InvalidArgumentError(absl::StrFormat(
        "region %d: memfd not sealed against shrinking (F_SEAL_SHRINK): seals are 0x%x%s; the agent "
        "maps it and a later ftruncate would fault the agent",
        i, seals,
        (seals & F_SEAL_SEAL) ? " (F_SEAL_SEAL: no seal can be added; create it with MFD_ALLOW_SEALING)"
                              : " (add F_SEAL_SHRINK before announcing)"));
  return absl::OkStatus();
}
}  // namespace

GuestRegions::~GuestRegions() { Release(); }

GuestRegions::GuestRegions(GuestRegions&& o) noexcept : regions_(std::move(o.regions_)) {
  o.regions_.clear();
}

GuestRegions& GuestRegions::operator=(GuestRegions&& o) noexcept {
  if (this != &o) {
    Release();
    regions_ = std::move(o.regions_);
    o.regions_.clear();
  }
  return *this;
}

void GuestRegions::Release() {
  for (auto& r : regions_)
    if (r.addr) munmap(r.addr, r.size);
  regions_.clear();
}

uint64_t GuestRegions::total_bytes() const {
  uint64_t t = 0;
  for (const auto& r : regions_) t += r.size;
  return t;
}

absl::Status GuestRegions::CheckLayout(const control::RegionAnnounce& a, size_t num_fds) {
  const int n = a.regions_size();
  if (n < 1 || static_cast<size_t>(n) > kMaxRegions)
    return absl::InvalidArgumentError(
        absl::StrFormat("region announce lists %d regions; want 1..%d", n, kMaxRegions));
  if (num_fds != static_cast<size_t>(n))
    return absl::InvalidArgumentError(
        absl::StrFormat("region announce lists %d regions but carries %d fds", n, num_fds));
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // iova, end
  for (int i = 0; i < n; i++) {
    const auto& r = a.regions(i);
    if (r.size() == 0) return absl::InvalidArgumentError(absl::StrFormat("region %d: size is 0", i));
    if ((r.iova() | r.size() | r.fd_offset()) % kPage != 0)
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %d: iova 0x%x, size 0x%x, fd_offset 0x%x must all be 4 KiB aligned", i,
          r.iova(), r.size(), r.fd_offset()));
    if (r.iova() + r.size() < r.iova() || r.iova() + r.size() > kMaxIova)
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %d: iova 0x%x + size 0x%x wraps or exceeds 2^48", i, r.iova(), r.size()));
    if (r.fd_offset() + r.size() < r.fd_offset())
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %d: fd_offset 0x%x + size 0x%x wraps", i, r.fd_offset(), r.size()));
    spans.emplace_back(r.iova(), r.iova() + r.size());
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); i++)
    if (spans[i].first < spans[i - 1].second)
      return absl::InvalidArgumentError(absl::StrFormat(
          "regions overlap: [0x%x, 0x%x) and [0x%x, 0x%x)", spans[i - 1].first,
          spans[i - 1].second, spans[i].first, spans[i].second));
  return absl::OkStatus();
}

absl::StatusOr<GuestRegions> GuestRegions::FromAnnounce(const control::RegionAnnounce& a,
                                                        std::vector<UniqueFd>& fds) {
  std::vector<UniqueFd> owned = std::move(fds);  // closed on every return
  fds.clear();
  NPA_RETURN_IF_ERROR(CheckLayout(a, owned.size()));
  GuestRegions out;
  for (int i = 0; i < a.regions_size(); i++) {
    const auto& r = a.regions(i);
    struct stat st;
    if (fstat(owned[i].get(), &st) < 0) return ErrnoError(errno, "region ", i, ": fstat of its fd");
    if (!S_ISREG(st.st_mode))
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %d: fd is not a memfd or regular file (mode 0%o)", i, st.st_mode & S_IFMT));
    // A guest that shrinks its memfd after this would make the agent's next
    // access to the mapping raise SIGBUS and kill every guest with it; the
    // shrink seal is irrevocable, so once seen the size below stays valid.
    // Checked before the size: a guest could otherwise shrink, then seal.
    NPA_RETURN_IF_ERROR(CheckShrinkSeal(owned[i].get(), i));
    if (fstat(owned[i].get(), &st) < 0) return ErrnoError(errno, "region ", i, ": fstat of its fd");
    if (static_cast<uint64_t>(st.st_size) < r.fd_offset() + r.size())
      return absl::InvalidArgumentError(absl::StrFormat(
          "region %d: fd_offset 0x%x + size 0x%x exceeds the file's %d bytes", i, r.fd_offset(),
          r.size(), st.st_size));
    void* p = mmap(nullptr, r.size(), PROT_READ | PROT_WRITE, MAP_SHARED, owned[i].get(),
                   static_cast<off_t>(r.fd_offset()));
    if (p == MAP_FAILED) return ErrnoError(errno, "region ", i, ": mmap of ", r.size(), " bytes");
    out.regions_.push_back(GuestRegion{r.iova(), r.size(), p});
  }
  return out;
}

}  // namespace npa::agent
