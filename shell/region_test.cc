#include "shell/region.h"

#include <sys/mman.h>
#include <sys/stat.h>

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
  } else {
    EXPECT_EQ(r->size(), 3u << 20);
  }
  r->base()[r->size() - 1] = 1;  // every byte is mapped
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
