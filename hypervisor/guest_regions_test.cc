#include "hypervisor/guest_regions.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace npa::agent {
namespace {

UniqueFd Memfd(size_t size) {
  UniqueFd fd(memfd_create("npa-test-region", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

control::RegionAnnounce Announce(std::initializer_list<std::array<uint64_t, 3>> rs) {
  control::RegionAnnounce a;
  for (auto& r : rs) {
    auto* x = a.add_regions();
    x->set_iova(r[0]);
    x->set_size(r[1]);
    x->set_fd_offset(r[2]);
  }
  return a;
}

void ExpectRejected(const control::RegionAnnounce& a, std::vector<UniqueFd> fds, const char* needle) {
  auto r = GuestRegions::FromAnnounce(a, fds);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find(needle), absl::string_view::npos) << r.status();
  EXPECT_TRUE(fds.empty()) << "the fds must be consumed";
}

TEST(GuestRegions, MapsSharedAndSeesTheGuestsBytes) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(3 * 4096));
  fds.push_back(Memfd(8192));
  int fd0 = dup(fds[0].get());
  auto r = GuestRegions::FromAnnounce(Announce({{0x7f0000000000, 8192, 4096}, {0x10000, 8192, 0}}), fds);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->regions().size(), 2u);
  EXPECT_EQ(r->total_bytes(), 16384u);
  // The guest writes through its own fd at fd_offset; the agent's view sees it.
  ASSERT_EQ(pwrite(fd0, "npa!", 4, 4096), 4);
  EXPECT_EQ(memcmp(r->regions()[0].addr, "npa!", 4), 0);
  EXPECT_EQ(r->regions()[0].iova, 0x7f0000000000u);
  close(fd0);
  GuestRegions moved = std::move(*r);
  EXPECT_EQ(moved.regions().size(), 2u);
}

TEST(GuestRegions, RejectsFdCountMismatch) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(4096));
  ExpectRejected(Announce({{0, 4096, 0}, {0x2000, 4096, 0}}), std::move(fds), "carries 1 fds");
}

TEST(GuestRegions, RejectsTooManyAndNone) {
  std::vector<UniqueFd> none;
  ExpectRejected(control::RegionAnnounce(), std::move(none), "want 1..8");
  control::RegionAnnounce a;
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 9; i++) {
    auto* x = a.add_regions();
    x->set_iova(0x100000ull * (i + 1));
    x->set_size(4096);
    fds.push_back(Memfd(4096));
  }
  ExpectRejected(a, std::move(fds), "9 regions");
}

TEST(GuestRegions, RejectsOverlap) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(16384));
  fds.push_back(Memfd(16384));
  ExpectRejected(Announce({{0x10000, 16384, 0}, {0x12000, 4096, 0}}), std::move(fds), "overlap");
}

TEST(GuestRegions, RejectsZeroUnalignedWrapAndHuge) {
  auto one = [](control::RegionAnnounce a, const char* needle) {
    std::vector<UniqueFd> fds;
    fds.push_back(Memfd(8192));
    ExpectRejected(a, std::move(fds), needle);
  };
  one(Announce({{0x1000, 0, 0}}), "size is 0");
  one(Announce({{0x1001, 4096, 0}}), "aligned");
  one(Announce({{0x1000, 4096, 17}}), "aligned");
  one(Announce({{0xfffffffffffff000ull, 0x2000, 0}}), "wraps or exceeds");
  one(Announce({{0x1000, 0x1000, 0xfffffffffffff000ull}}), "fd_offset");
  // Huge but well-formed: the file is only 8 KiB.
  one(Announce({{0x1000, 1ull << 40, 0}}), "exceeds the file");
  one(Announce({{0x1000, 8192, 4096}}), "exceeds the file");
}

TEST(GuestRegions, RejectsFdsThatAreNotFiles) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[1]);
  std::vector<UniqueFd> fds;
  fds.emplace_back(p[0]);
  ExpectRejected(Announce({{0x1000, 4096, 0}}), std::move(fds), "not a memfd");
  std::vector<UniqueFd> dir;
  dir.emplace_back(open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ExpectRejected(Announce({{0x1000, 4096, 0}}), std::move(dir), "not a memfd");
}

}  // namespace
}  // namespace npa::agent
