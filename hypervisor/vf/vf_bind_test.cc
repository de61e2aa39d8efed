// hypervisor/vf/vf_bind_test.cc
#include "hypervisor/vf/vf_bind.h"

#include <gtest/gtest.h>

#include "tests/support/fake_sysfs.h"

namespace npa::agent::vf {
namespace {

class VfBindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sys_ = FakeSysfs::Create();
    ASSERT_NE(sys_, nullptr);
    sys_->AddDriver("e1000e");
    sys_->AddDriver("vfio-pci");
    sys_->AddDriver("nvme");
    sys_->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3, .class_code = 0x020000,
                       .driver = "e1000e", .iommu_group = 5, .reset_method = "pm bus"});
    sys_->AddFunction({.bdf = "0000:06:00.0", .vendor = 0x1b36, .device = 0x0010, .class_code = 0x010802,
                       .driver = "nvme", .iommu_group = 8, .sriov_totalvfs = 3, .vf_device = 0x0010});
  }
  std::string Override(const std::string& bdf) {
    return *sys_->Read("bus/pci/devices/" + bdf + "/driver_override");
  }
  std::unique_ptr<FakeSysfs> sys_;
};

TEST_F(VfBindTest, BindAndRestore) {
  VfBinder b(*sys_, absl::Milliseconds(200));
  auto bind = b.BindToVfio("0000:03:00.0", {.reset_method = "bus"});
  ASSERT_TRUE(bind.ok()) << bind.status();
  EXPECT_EQ(bind->original_driver, "e1000e");
  EXPECT_EQ(bind->original_reset_method, "pm bus");
  EXPECT_EQ(*b.CurrentDriver("0000:03:00.0"), "vfio-pci");
  EXPECT_EQ(Override("0000:03:00.0"), "vfio-pci");
  EXPECT_EQ(*sys_->Read("bus/pci/devices/0000:03:00.0/reset_method"), "bus");
  // Order matters: reset_method and override before unbind, probe last.
  std::vector<std::string> want = {
      "bus/pci/devices/0000:03:00.0/reset_method=bus",
      "bus/pci/devices/0000:03:00.0/driver_override=vfio-pci",
      "bus/pci/devices/0000:03:00.0/driver/unbind=0000:03:00.0",
      "bus/pci/drivers_probe=0000:03:00.0"};
  EXPECT_EQ(sys_->write_log, want);

  ASSERT_TRUE(b.Restore(*bind).ok());
  EXPECT_EQ(*b.CurrentDriver("0000:03:00.0"), "e1000e");
  EXPECT_EQ(Override("0000:03:00.0"), "(null)");
  EXPECT_EQ(*sys_->Read("bus/pci/devices/0000:03:00.0/reset_method"), "pm bus");
}

TEST_F(VfBindTest, AlreadyOnVfioIsANoOp) {
  VfBinder b(*sys_, absl::Milliseconds(200));
  auto first = b.BindToVfio("0000:03:00.0");
  ASSERT_TRUE(first.ok());
  sys_->write_log.clear();
  auto second = b.BindToVfio("0000:03:00.0");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->original_driver, "vfio-pci");
  EXPECT_TRUE(sys_->write_log.empty());
  EXPECT_TRUE(b.Restore(*second).ok());
  EXPECT_EQ(*b.CurrentDriver("0000:03:00.0"), "vfio-pci");
}

TEST_F(VfBindTest, VfioRefusesThenRollsBack) {
  sys_->refuse_bind.insert("vfio-pci");
  VfBinder b(*sys_, absl::Milliseconds(50));
  auto bind = b.BindToVfio("0000:03:00.0");
  ASSERT_FALSE(bind.ok());
  EXPECT_EQ(bind.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(bind.status().message().find("vfio-pci module"), std::string::npos) << bind.status();
  EXPECT_EQ(*b.CurrentDriver("0000:03:00.0"), "e1000e");
  EXPECT_EQ(Override("0000:03:00.0"), "(null)");
}

TEST_F(VfBindTest, RejectsBadInput) {
  VfBinder b(*sys_, absl::Milliseconds(50));
  EXPECT_EQ(b.BindToVfio("0000:03:00.0/../x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.BindToVfio("0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b.SetResetMethod("0000:03:00.0", "reboot").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.SetResetMethod("0000:03:00.0", "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(b.SetResetMethod("0000:03:00.0", "flr bus").ok());
}

TEST_F(VfBindTest, EnableVfsThroughZeroAndBounds) {
  VfBinder b(*sys_, absl::Milliseconds(200));
  auto vfs = b.EnableVfs("0000:06:00.0", 2);
  ASSERT_TRUE(vfs.ok()) << vfs.status();
  EXPECT_EQ(*vfs, (std::vector<std::string>{"0000:06:00.1", "0000:06:00.2"}));
  EXPECT_EQ(*sys_->Read("bus/pci/devices/0000:06:00.0/sriov_drivers_autoprobe"), "0");
  EXPECT_EQ(*b.CurrentDriver("0000:06:00.1"), "");
  // 2 -> 3 must go through 0 (the kernel answers EBUSY otherwise).
  auto more = b.EnableVfs("0000:06:00.0", 3);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(more->size(), 3u);
  EXPECT_EQ(b.EnableVfs("0000:06:00.0", 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b.EnableVfs("0000:06:00.0", 0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b.EnableVfs("0000:03:00.0", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  // A VF binds to vfio-pci like any function.
  auto bind = b.BindToVfio((*more)[0]);
  ASSERT_TRUE(bind.ok()) << bind.status();
  EXPECT_EQ(bind->original_driver, "");
  ASSERT_TRUE(b.Restore(*bind).ok());
  EXPECT_EQ(*b.CurrentDriver((*more)[0]), "");
  ASSERT_TRUE(b.DisableVfs("0000:06:00.0").ok());
  EXPECT_FALSE(sys_->Exists("bus/pci/devices/0000:06:00.1"));
}

TEST_F(VfBindTest, KernelErrorsCarryErrnoAndPath) {
  VfBinder b(*sys_, absl::Milliseconds(50));
  ASSERT_TRUE(b.EnableVfs("0000:06:00.0", 1).ok());
  // Direct non-zero -> non-zero, bypassing EnableVfs: the fake kernel says EBUSY.
  absl::Status st = sys_->Write("bus/pci/devices/0000:06:00.0/sriov_numvfs", "2");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);  // EBUSY, per absl::ErrnoToStatus
  EXPECT_NE(st.message().find("sriov_numvfs"), std::string::npos) << st;
}

}  // namespace
}  // namespace npa::agent::vf
