// hypervisor/vf/pci_inventory.h — what PCI functions a host has, and what the
// VF manager needs to know about each: identity from libpci, the rest (driver,
// IOMMU group, SR-IOV state, reset methods, NUMA node) from sysfs.
//
//   npa::agent::vf::SysfsRoot sys;
//   NPA_ASSIGN_OR_RETURN(auto fns, npa::agent::vf::ListPciFunctions(sys));
//   for (const auto& f : fns) if (f.is_vf()) ...;
//   std::cout << npa::agent::vf::PciFunctionsToJson(fns);   // npactl vf list --json
//
// libpci reads `<root>/bus/pci` (its "sysfs.path" parameter), so a fake root
// works for both halves. libpci's fatal errors are caught (it would otherwise
// exit the process) and returned as kInternal naming libpci's message.
#ifndef NPA_HYPERVISOR_VF_PCI_INVENTORY_H_
#define NPA_HYPERVISOR_VF_PCI_INVENTORY_H_

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hypervisor/vf/sysfs.h"

namespace npa::agent::vf {

struct PciFunction {
  std::string bdf;  // "0000:03:00.0"
  uint16_t vendor = 0, device = 0;
  uint16_t subsystem_vendor = 0, subsystem_device = 0;
  uint32_t class_code = 0;  // base << 16 | sub << 8 | prog-if (0x020000 = Ethernet)
  std::string driver;           // bound driver, "" if none
  std::string driver_override;  // "" if unset ("(null)" in sysfs)
  std::optional<int> iommu_group;
  std::optional<int> numa_node;  // sysfs -1 -> nullopt
  bool sriov_capable = false;    // has sriov_totalvfs (an SR-IOV PF)
  int sriov_totalvfs = 0, sriov_numvfs = 0;
  std::vector<std::string> virtfns;  // BDFs of virtfn0, virtfn1, ... in index order
  std::string physfn;                // BDF of the PF if this is a VF, else ""
  std::vector<std::string> reset_methods;  // sysfs reset_method, in kernel order

  bool is_vf() const { return !physfn.empty(); }
  bool is_network() const { return (class_code >> 16) == 0x02; }
};

// "DDDD:BB:DD.F", lower- or upper-case hex, device <= 0x1f, function <= 7.
absl::Status ValidateBdf(absl::string_view bdf);

// Every function under <root>/bus/pci/devices, sorted by BDF.
absl::StatusOr<std::vector<PciFunction>> ListPciFunctions(const SysfsRoot& sys);
// One function; kNotFound if absent.
absl::StatusOr<PciFunction> DescribePciFunction(const SysfsRoot& sys, absl::string_view bdf);

// Just the sysfs half (driver, group, SR-IOV, reset, NUMA) into `f` (bdf set).
absl::Status FillFromSysfs(const SysfsRoot& sys, PciFunction& f);

// JSON: {"functions":[{"bdf":"0000:03:00.0","vendor":"8086",...}]}. Ids are
// 4-digit hex strings, class 6-digit; absent optionals are null.
std::string PciFunctionsToJson(const std::vector<PciFunction>& fns);
std::string PciFunctionToJson(const PciFunction& f);

}  // namespace npa::agent::vf

#endif  // NPA_HYPERVISOR_VF_PCI_INVENTORY_H_
