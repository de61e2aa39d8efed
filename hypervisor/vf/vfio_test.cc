// hypervisor/vf/vfio_test.cc — what can be checked without /dev/vfio. The
// real ioctl paths run in the VFIO lab (tests/lab: scenarios vfio-dma, reset,
// e1000e_vf, conform_*, agent_vf).
#include "hypervisor/vf/vfio.h"

#include <sys/mman.h>

#include <gtest/gtest.h>

#include "tests/support/fake_sysfs.h"

namespace npa::agent::vf {
namespace {

TEST(Vfio, MissingContainerIsNotFoundAndNamed) {
  auto c = VfioContainer::Open("/nonexistent/vfio");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("/nonexistent/vfio"), std::string::npos) << c.status();
}

TEST(Vfio, NonVfioFileFailsOnTheFirstIoctlByName) {
  auto c = VfioContainer::Open("/dev/null");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("VFIO_GET_API_VERSION"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("/dev/null"), std::string::npos) << c.status();
}

TEST(Vfio, GroupOpenAndGroupOf) {
  auto g = VfioGroup::Open(7, "/nonexistent");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("/nonexistent/7"), std::string::npos) << g.status();
  EXPECT_EQ(VfioGroup::Open(-1).status().code(), absl::StatusCode::kInvalidArgument);

  auto sys = FakeSysfs::Create();
  sys->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3, .iommu_group = 12});
  sys->AddFunction({.bdf = "0000:04:00.0", .vendor = 0x8086, .device = 0x10d3});
  auto id = VfioGroup::GroupOf("0000:03:00.0", sys->root());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 12);
  EXPECT_EQ(VfioGroup::GroupOf("0000:04:00.0", sys->root()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(VfioGroup::GroupOf("../x", sys->root()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Vfio, PciNamesThatCannotEscapeAPath) {
  EXPECT_TRUE(CheckPciName("0000:03:00.0").ok());
  EXPECT_TRUE(CheckPciName("0000:ab:1f.7").ok());
  for (const char* bad : {"", ".", "..", "../x", "0000:03:00.0/driver", "0000:03:00.0 ", "0000:03:00.0:00000000000000000000"})
    EXPECT_EQ(CheckPciName(bad).code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
}

TEST(Vfio, FunctionOpenFailsAtTheFirstMissingPieceByName) {
  auto sys = FakeSysfs::Create();
  sys->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3, .iommu_group = 12});
  sys->AddFunction({.bdf = "0000:04:00.0", .vendor = 0x8086, .device = 0x10d3});
  // No group link: nothing is opened.
  auto f = VfioFunction::Open("0000:04:00.0", {"/nonexistent", sys->root()});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(f.status().message().find("0000:04:00.0 has no IOMMU group"), std::string::npos) << f.status();
  // A group, but no container node in dev_dir.
  f = VfioFunction::Open("0000:03:00.0", {"/nonexistent", sys->root()});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/vfio"), std::string::npos) << f.status();
  EXPECT_EQ(VfioFunction::Open("..", {"/nonexistent", sys->root()}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Vfio, EmptyDmaRegionUnmapsToNothing) {
  DmaRegion r;
  EXPECT_FALSE(r.mapped());
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(r.Unmap().ok());
  DmaRegion moved(std::move(r));
  EXPECT_FALSE(moved.mapped());
  EXPECT_TRUE(moved.Unmap().ok());
}

TEST(Vfio, DmaRangeChecks) {
  EXPECT_TRUE(CheckDmaRange(0x7f0000000000, 0x7f0000000000, 0x200000).ok());
  EXPECT_EQ(CheckDmaRange(0x1000, 0x1000, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckDmaRange(0x1001, 0x1000, 0x1000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckDmaRange(0x1000, 0x1000, 0x1800).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckDmaRange(0x1000, 0xfffffffffffff000ull, 0x2000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckDmaRange(0xfffffffffffff000ull, 0x1000, 0x2000).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Vfio, MappedRegionUnmapsAndMoves) {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  {
    MappedRegion a(p, 4096);
    MappedRegion b(std::move(a));
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b.size(), 4096u);
    b.data()[0] = 1;
  }
  // After the region is gone the page is unmapped: mincore says ENOMEM.
  unsigned char vec;
  EXPECT_EQ(::mincore(p, 4096, &vec), -1);
}

}  // namespace
}  // namespace npa::agent::vf
