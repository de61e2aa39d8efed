// tests/support/fake_sysfs.h — a sysfs tree in a temp dir that reacts
// to writes the way the kernel's PCI core does, for unit tests of the VF
// library (no root, no devices).
//
//   auto sys = FakeSysfs::Create();
//   sys->AddDriver("e1000e"); sys->AddDriver("vfio-pci");
//   sys->AddFunction({.bdf = "0000:03:00.0", .vendor = 0x8086, .device = 0x10d3,
//                     .class_code = 0x020000, .driver = "e1000e", .iommu_group = 7});
//   VfBinder b(*sys);  ...
//
// Modelled: driver/unbind and drivers/<d>/unbind remove the driver link;
// drivers_probe binds driver_override (if that driver exists and is not in
// `refuse_bind`) or else the function's native driver; drivers/<d>/bind binds;
// driver_override "\n" clears to "(null)"; sriov_numvfs creates or removes VF
// functions (func numbers after the PF's) with virtfnN/physfn links, EBUSY on a
// non-zero to non-zero change, ERANGE above sriov_totalvfs.
#ifndef NPA_TESTS_SUPPORT_FAKE_SYSFS_H_
#define NPA_TESTS_SUPPORT_FAKE_SYSFS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hypervisor/vf/sysfs.h"

namespace npa::agent::vf {

class FakeSysfs : public SysfsRoot {
 public:
  struct Fn {
    std::string bdf;
    uint16_t vendor = 0, device = 0;
    uint16_t subsystem_vendor = 0, subsystem_device = 0;
    uint32_t class_code = 0;
    std::string driver;  // bound now and claimed by drivers_probe ("" none)
    int iommu_group = -1;
    int numa_node = -1;
    int sriov_totalvfs = 0;  // > 0: an SR-IOV PF
    uint16_t vf_device = 0;  // device id of its VFs
    std::string reset_method = "flr bus";
  };

  static std::unique_ptr<FakeSysfs> Create();
  ~FakeSysfs() override;

  void AddDriver(const std::string& name);
  void AddFunction(const Fn& fn);

  absl::Status Write(absl::string_view rel, absl::string_view value) override;

  std::set<std::string> refuse_bind;  // drivers whose probe "fails"
  std::vector<std::string> write_log;  // "rel=value" per write, in order

 private:
  explicit FakeSysfs(std::string root) : SysfsRoot(std::move(root)) {}
  void Put(const std::string& rel, const std::string& content);
  void Link(const std::string& rel, const std::string& target);
  void BindTo(const std::string& bdf, const std::string& driver);
  std::map<std::string, Fn> fns_;
};

}  // namespace npa::agent::vf

#endif  // NPA_TESTS_SUPPORT_FAKE_SYSFS_H_
