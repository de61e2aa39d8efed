// hypervisor/vf/pci_inventory_test.cc
#include "hypervisor/vf/pci_inventory.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/fake_sysfs.h"
#include "hypervisor/vf/vf_bind.h"

namespace npa::agent::vf {
namespace {

std::unique_ptr<FakeSysfs> Tree() {
  auto sys = FakeSysfs::Create();
  sys->AddDriver("e1000e");
  sys->AddDriver("virtio-pci");
  sys->AddDriver("nvme");
  sys->AddFunction({.bdf = "0000:01:00.0", .vendor = 0x1af4, .device = 0x1041, .subsystem_vendor = 0x1af4,
                    .subsystem_device = 0x1100, .class_code = 0x020000, .driver = "virtio-pci",
                    .iommu_group = 3, .numa_node = 0});
  sys->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3, .subsystem_vendor = 0x8086,
                    .subsystem_device = 0x0000, .class_code = 0x020000, .driver = "e1000e", .iommu_group = 5,
                    .reset_method = "pm bus"});
  sys->AddFunction({.bdf = "0000:06:00.0", .vendor = 0x1b36, .device = 0x0010, .class_code = 0x010802,
                    .driver = "nvme", .iommu_group = 8, .sriov_totalvfs = 2, .vf_device = 0x0010});
  return sys;
}

TEST(ValidateBdf, AcceptsAndRejects) {
  EXPECT_TRUE(ValidateBdf("0000:03:00.0").ok());
  EXPECT_TRUE(ValidateBdf("ABCD:ff:1f.7").ok());
  for (const char* bad : {"", "03:00.0", "0000:03:00.8", "0000:03:20.0", "0000:03:00:0", "0000:0g:00.0",
                          "0000:03:00.0/../x", "../../../etc"})
    EXPECT_EQ(ValidateBdf(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST(PciInventory, LibpciAndSysfsAgree) {
  auto sys = Tree();
  auto fns = ListPciFunctions(*sys);
  ASSERT_TRUE(fns.ok()) << fns.status();
  ASSERT_EQ(fns->size(), 3u);
  const PciFunction& v = (*fns)[0];
  EXPECT_EQ(v.bdf, "0000:01:00.0");
  EXPECT_EQ(v.vendor, 0x1af4);
  EXPECT_EQ(v.device, 0x1041);
  EXPECT_EQ(v.subsystem_device, 0x1100);
  EXPECT_EQ(v.class_code, 0x020000u);
  EXPECT_TRUE(v.is_network());
  EXPECT_EQ(v.driver, "virtio-pci");
  EXPECT_EQ(v.iommu_group, 3);
  EXPECT_EQ(v.numa_node, 0);
  EXPECT_FALSE(v.sriov_capable);
  const PciFunction& e = (*fns)[1];
  EXPECT_EQ(e.vendor, 0x8086);
  EXPECT_EQ(e.device, 0x10d3);
  EXPECT_EQ(e.iommu_group, 5);
  EXPECT_FALSE(e.numa_node.has_value());  // -1
  EXPECT_EQ(e.reset_methods, (std::vector<std::string>{"pm", "bus"}));
  const PciFunction& n = (*fns)[2];
  EXPECT_TRUE(n.sriov_capable);
  EXPECT_EQ(n.sriov_totalvfs, 2);
  EXPECT_EQ(n.sriov_numvfs, 0);
  EXPECT_FALSE(n.is_network());
}

TEST(PciInventory, SeesVfsAndTheirPf) {
  auto sys = Tree();
  VfBinder b(*sys);
  auto vfs = b.EnableVfs("0000:06:00.0", 2);
  ASSERT_TRUE(vfs.ok()) << vfs.status();
  auto pf = DescribePciFunction(*sys, "0000:06:00.0");
  ASSERT_TRUE(pf.ok()) << pf.status();
  EXPECT_EQ(pf->sriov_numvfs, 2);
  EXPECT_EQ(pf->virtfns, (std::vector<std::string>{"0000:06:00.1", "0000:06:00.2"}));
  auto vf = DescribePciFunction(*sys, "0000:06:00.2");
  ASSERT_TRUE(vf.ok()) << vf.status();
  EXPECT_TRUE(vf->is_vf());
  EXPECT_EQ(vf->physfn, "0000:06:00.0");
  EXPECT_EQ(vf->driver, "");  // autoprobe off
}

TEST(PciInventory, DescribeMissingAndMalformed) {
  auto sys = Tree();
  EXPECT_EQ(DescribePciFunction(*sys, "0000:09:00.0").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DescribePciFunction(*sys, "junk").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PciInventory, MissingSysfsIsAnErrorNotAnExit) {
  SysfsRoot sys("/nonexistent-npa-sysfs");
  auto fns = ListPciFunctions(sys);
  // libpci's fatal error handler would exit(1); we get a status instead.
  ASSERT_FALSE(fns.ok());
  EXPECT_NE(fns.status().message().find("/nonexistent-npa-sysfs"), std::string::npos) << fns.status();
}

TEST(PciInventory, CorruptAttributeIsReported) {
  auto sys = Tree();
  ASSERT_TRUE(sys->SysfsRoot::Write("bus/pci/devices/0000:03:00.0/numa_node", "zero").ok());
  auto fns = ListPciFunctions(*sys);
  ASSERT_FALSE(fns.ok());
  EXPECT_NE(fns.status().message().find("numa_node"), std::string::npos) << fns.status();
}

TEST(PciInventory, Json) {
  auto sys = Tree();
  auto fns = ListPciFunctions(*sys);
  ASSERT_TRUE(fns.ok());
  std::string j = PciFunctionsToJson(*fns);
  EXPECT_NE(j.find(R"({"bdf":"0000:03:00.0","vendor":"8086","device":"10d3",)"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("class":"020000","driver":"e1000e","driver_override":null,"iommu_group":5,)"
                   R"("numa_node":null,"sriov":null,"physfn":null,"reset_methods":["pm","bus"]})"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find(R"("sriov":{"totalvfs":2,"numvfs":0,"virtfns":[]})"), std::string::npos) << j;
  PciFunction f;
  f.bdf = "0000:00:00.0";
  f.driver = "we\"ird\n";
  EXPECT_NE(PciFunctionToJson(f).find(R"("driver":"we\"ird\n")"), std::string::npos)
      << PciFunctionToJson(f);
  // What a JSON reader gets back is the string itself, whatever sysfs held.
  f.driver_override = "bad\xff utf-8";
  auto parsed = nlohmann::json::parse(PciFunctionToJson(f));
  EXPECT_EQ(parsed["driver"], "we\"ird\n");
  EXPECT_EQ(parsed["driver_override"], "bad\xef\xbf\xbd utf-8") << "invalid UTF-8 becomes U+FFFD";
  EXPECT_TRUE(parsed["sriov"].is_null());
}

}  // namespace
}  // namespace npa::agent::vf
