#include "shell/region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"

namespace npa::shell {
namespace {

TEST(RegionTest, PlainMemfdIsSharedAndRoundedToPages) {
  auto r = Region::Create(10000, /*try_huge=*/false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->hugepages());
  EXPECT_EQ(r->size(), 12288u);
  EXPECT_EQ(r->iova(), reinterpret_cast<uintptr_t>(r->base()));
  struct stat st;
  ASSERT_EQ(fstat(r->fd(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), r->size());
  // A second mapping of the fd (what a back end does) sees our writes.
  r->base()[5000] = 0x5a;
  void* p = mmap(nullptr, r->size(), PROT_READ, MAP_SHARED, r->fd(), 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(static_cast<uint8_t*>(p)[5000], 0x5a);
  munmap(p, r->size());
}

TEST(RegionTest, HugepageAttemptFallsBackOrUses2MB) {
  auto r = Region::Create(3 << 20, /*try_huge=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  if (r->hugepages()) {
    EXPECT_EQ(r->size() % (2u << 20), 0u);
    EXPECT_EQ(r->page_size(), 2u << 20);
    // hugetlbfs memfds take seals since Linux 4.16.
    EXPECT_EQ(fcntl(r->fd(), F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW);
  } else {
    EXPECT_EQ(r->size(), 3u << 20);
  }
  r->base()[r->size() - 1] = 1;  // every byte is mapped
}

// The agent maps the fd; a shell (or anyone holding the fd) must not be able
// to shrink it under the agent (SIGBUS) nor grow it, but writes stay allowed.
TEST(RegionTest, MemfdIsSealedAgainstShrinkAndGrowButWritable) {
  auto r = Region::Create(8192, /*try_huge=*/false);
  ASSERT_TRUE(r.ok()) << r.status();
  int seals = fcntl(r->fd(), F_GET_SEALS);
  ASSERT_GE(seals, 0) << strerror(errno);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
  EXPECT_EQ(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);
  errno = 0;
  EXPECT_EQ(ftruncate(r->fd(), 4096), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(ftruncate(r->fd(), 0), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(ftruncate(r->fd(), 3 * 4096), -1);
  EXPECT_EQ(errno, EPERM);
  struct stat st;
  ASSERT_EQ(fstat(r->fd(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), r->size());
  // Same size is not a change: allowed.
  EXPECT_EQ(ftruncate(r->fd(), static_cast<off_t>(r->size())), 0);
  // Writes through the fd and the mapping still work.
  ASSERT_EQ(pwrite(r->fd(), "seal", 4, 100), 4);
  EXPECT_EQ(memcmp(r->base() + 100, "seal", 4), 0);
  r->base()[8191] = 7;
  // A writable shared mapping of the fd (what the agent does) is allowed.
  void* p = mmap(nullptr, r->size(), PROT_READ | PROT_WRITE, MAP_SHARED, r->fd(), 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(static_cast<uint8_t*>(p)[8191], 7);
  munmap(p, r->size());
}

TEST(RegionTest, ContainsIsOverflowSafe) {
  auto r = Region::Create(4096, false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->Contains(r->iova(), 4096));
  EXPECT_FALSE(r->Contains(r->iova(), 4097));
  EXPECT_FALSE(r->Contains(r->iova() + 4000, 100));
  EXPECT_FALSE(r->Contains(r->iova() + 10, ~0ull));
  EXPECT_FALSE(r->Contains(r->iova() - 1, 1));
}

TEST(RegionTest, ZeroSizeIsRejected) { EXPECT_FALSE(Region::Create(0, false).ok()); }

}  // namespace
}  // namespace npa::shell
