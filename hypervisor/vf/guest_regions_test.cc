#include "hypervisor/vf/guest_regions.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace npa::agent {
namespace {

// What the shell announces: a memfd sealed against shrinking and growing.
UniqueFd Memfd(size_t size, int seals = F_SEAL_SHRINK | F_SEAL_GROW) {
  UniqueFd fd(memfd_create("npa-test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  if (seals) {
    EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, seals), 0) << strerror(errno);
  }
  return fd;
}

// What DPDK/QEMU (and a hostile guest) send: no sealing possible at all.
UniqueFd UnsealableMemfd(size_t size) {
  UniqueFd fd(memfd_create("npa-test-unsealed", MFD_CLOEXEC));
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

constexpr const char* kNotSealed = "memfd not sealed against shrinking (F_SEAL_SHRINK)";

TEST(GuestRegions, RejectsMemfdThatCannotBeSealed) {
  std::vector<UniqueFd> fds;
  fds.push_back(UnsealableMemfd(8192));
  ExpectRejected(Announce({{0x10000, 8192, 0}}), std::move(fds),
                 "region 0: memfd not sealed against shrinking (F_SEAL_SHRINK)");
}

TEST(GuestRegions, RejectsSealableButUnsealedAndGrowOnlySealedMemfds) {
  {
    std::vector<UniqueFd> fds;
    fds.push_back(Memfd(8192, /*seals=*/0));
    ExpectRejected(Announce({{0x10000, 8192, 0}}), std::move(fds), kNotSealed);
  }
  {
    std::vector<UniqueFd> fds;
    fds.push_back(Memfd(8192, F_SEAL_GROW | F_SEAL_WRITE));
    ExpectRejected(Announce({{0x10000, 8192, 0}}), std::move(fds), kNotSealed);
  }
}

TEST(GuestRegions, NamesTheUnsealedRegionAmongSealedOnes) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(8192));
  fds.push_back(UnsealableMemfd(8192));
  auto r = GuestRegions::FromAnnounce(Announce({{0x10000, 8192, 0}, {0x20000, 8192, 0}}), fds);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("region 1: memfd not sealed"), absl::string_view::npos)
      << r.status();
  EXPECT_TRUE(fds.empty());
}

TEST(GuestRegions, RejectsRegularFileOnDisk) {
  char path[] = "/tmp/npa-guest-regions-XXXXXX";
  int raw = mkstemp(path);
  ASSERT_GE(raw, 0);
  unlink(path);
  UniqueFd f(raw);
  ASSERT_EQ(ftruncate(f.get(), 8192), 0);
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(f));
  ExpectRejected(Announce({{0x10000, 8192, 0}}), std::move(fds), kNotSealed);
}

// The shell's memory: accepted, and the guest can no longer pull it away.
TEST(GuestRegions, AcceptsSealedMemfdWhichThenCannotShrink) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(8192, F_SEAL_SHRINK));  // shrink alone is enough
  int guest = dup(fds[0].get());
  auto r = GuestRegions::FromAnnounce(Announce({{0x10000, 8192, 0}}), fds);
  ASSERT_TRUE(r.ok()) << r.status();
  errno = 0;
  EXPECT_EQ(ftruncate(guest, 0), -1);
  EXPECT_EQ(errno, EPERM);
  // Every byte of the agent's mapping is still backed.
  static_cast<volatile uint8_t*>(r->regions()[0].addr)[8191] = 1;
  uint8_t b = 0;
  ASSERT_EQ(pread(guest, &b, 1, 8191), 1);
  EXPECT_EQ(b, 1);
  close(guest);
}

}  // namespace
}  // namespace npa::agent
