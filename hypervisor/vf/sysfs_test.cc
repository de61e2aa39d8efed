// hypervisor/vf/sysfs_test.cc
#include "hypervisor/vf/sysfs.h"

#include <gtest/gtest.h>

#include "tests/support/fake_sysfs.h"

namespace npa::agent::vf {
namespace {

TEST(SysfsRoot, RejectsEscapingPaths) {
  SysfsRoot sys("/sys");
  for (const char* bad : {"/etc/passwd", "bus/../../etc/passwd", "bus//pci", "./bus", ""}) {
    EXPECT_EQ(SysfsRoot::CheckRelative(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(sys.Read(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(sys.Exists(bad)) << bad;
  }
  EXPECT_TRUE(SysfsRoot::CheckRelative("bus/pci/devices/0000:00:00.0/vendor").ok());
}

TEST(SysfsRoot, ReadWriteListReadlink) {
  auto sys = FakeSysfs::Create();
  ASSERT_NE(sys, nullptr);
  sys->AddDriver("e1000e");
  sys->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3, .class_code = 0x020000,
                    .driver = "e1000e", .iommu_group = 7});
  auto v = sys->Read("bus/pci/devices/0000:03:00.0/vendor");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "0x8086");  // trailing newline stripped
  auto l = sys->ReadLink("bus/pci/devices/0000:03:00.0/driver");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(Basename(*l), "e1000e");
  auto names = sys->List("bus/pci/devices");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"0000:03:00.0"});
  // The base class's Write: a plain attribute.
  ASSERT_TRUE(sys->SysfsRoot::Write("bus/pci/devices/0000:03:00.0/numa_node", "1").ok());
  EXPECT_EQ(*sys->Read("bus/pci/devices/0000:03:00.0/numa_node"), "1");
}

TEST(SysfsRoot, WriteNeverCreatesAndErrorsNameThePath) {
  auto sys = FakeSysfs::Create();
  ASSERT_NE(sys, nullptr);
  absl::Status st = sys->SysfsRoot::Write("bus/pci/no_such_attr", "1");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(st.message().find("no_such_attr"), std::string::npos) << st;
  EXPECT_FALSE(sys->Exists("bus/pci/no_such_attr"));
  EXPECT_EQ(sys->ReadLink("bus/pci/drivers_probe").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Basename, Works) {
  EXPECT_EQ(Basename("../../../bus/pci/drivers/e1000e"), "e1000e");
  EXPECT_EQ(Basename("vfio-pci"), "vfio-pci");
  EXPECT_EQ(Basename("a/b/"), "b");
}

}  // namespace
}  // namespace npa::agent::vf
