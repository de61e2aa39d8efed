#include "hypervisor/npactl/npactl_vf_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hypervisor/npactl/npactl_format.h"

namespace npa::agent {
namespace {

std::string OrNull(const std::string& s) { return s.empty() ? "null" : JsonString(s); }

void VfJson(const control::VfInfo& v, std::string* o) {
  absl::StrAppend(o, "{\"pci\":", JsonString(v.pci_address()));
  absl::StrAppendFormat(o,
                        ",\"vendor\":\"%04x\",\"device\":\"%04x\",\"subsystem_vendor\":\"%04x\","
                        "\"subsystem_device\":\"%04x\",\"class\":\"%06x\",\"revision\":%u",
                        v.vendor() & 0xffff, v.device() & 0xffff, v.subsystem_vendor() & 0xffff,
                        v.subsystem_device() & 0xffff, v.class_code() & 0xffffff, v.revision());
  absl::StrAppend(o, ",\"driver\":", OrNull(v.driver()), ",\"iommu_group\":",
                  v.iommu_group() < 0 ? "null" : absl::StrCat(v.iommu_group()), ",\"numa_node\":",
                  v.numa_node() < 0 ? "null" : absl::StrCat(v.numa_node()), ",\"sriov\":");
  if (v.sriov_totalvfs() > 0)
    absl::StrAppend(o, "{\"totalvfs\":", v.sriov_totalvfs(), ",\"numvfs\":", v.sriov_numvfs(), "}");
  else
    absl::StrAppend(o, "null");
  absl::StrAppend(o, ",\"physfn\":", OrNull(v.physfn()), ",\"reset_methods\":[");
  for (int i = 0; i < v.reset_methods_size(); i++)
    absl::StrAppend(o, i ? "," : "", JsonString(v.reset_methods(i)));
  absl::StrAppend(o, "],\"in_pool\":", v.in_pool() ? "true" : "false", ",\"state\":",
                  OrNull(v.state()), ",\"guest\":", OrNull(v.guest()), ",\"offer_id\":", v.offer_id(),
                  ",\"last_error\":", OrNull(v.last_error()), "}");
}

}  // namespace

std::string FormatVfJson(const control::AdminReply& r) {
  std::string o = absl::StrCat("{\"agent\":", JsonString(r.agent_name()),
                               ",\"message\":", OrNull(r.message()), ",\"vfs\":[");
  for (int i = 0; i < r.vfs_size(); i++) {
    if (i) o += ",";
    VfJson(r.vfs(i), &o);
  }
  return o + "]}\n";
}

std::string FormatVfTable(const control::AdminReply& r, bool list) {
  std::string o;
  if (!r.message().empty()) absl::StrAppend(&o, r.message(), "\n");
  if (!list && r.vfs_size() == 0) return o;
  absl::StrAppendFormat(&o, "%-13s %-9s %-9s %-6s %-9s %5s %-7s %-9s %-4s %-9s %s\n", "PCI", "ID",
                        "SUBSYS", "CLASS", "DRIVER", "GROUP", "SRIOV", "RESET", "POOL", "STATE",
                        "GUEST");
  for (const auto& v : r.vfs()) {
    std::string sriov = v.sriov_totalvfs() > 0
                            ? absl::StrFormat("%u/%u", v.sriov_numvfs(), v.sriov_totalvfs())
                            : (v.physfn().empty() ? "-" : "vf");
    std::string reset = v.reset_methods_size() ? absl::StrJoin(v.reset_methods(), ",") : "-";
    absl::StrAppendFormat(
        &o, "%-13s %04x:%04x %04x:%04x %06x %-9s %5s %-7s %-9s %-4s %-9s %s\n", v.pci_address(),
        v.vendor() & 0xffff, v.device() & 0xffff, v.subsystem_vendor() & 0xffff,
        v.subsystem_device() & 0xffff, v.class_code() & 0xffffff,
        v.driver().empty() ? "-" : v.driver(),
        v.iommu_group() < 0 ? "-" : absl::StrCat(v.iommu_group()), sriov, reset,
        v.in_pool() ? "yes" : "no", v.state().empty() ? "-" : v.state(),
        v.guest().empty() ? "-" : v.guest());
    if (!v.last_error().empty()) absl::StrAppend(&o, "              last error: ", v.last_error(), "\n");
  }
  if (list && r.vfs_size() == 0) o += "(no network or SR-IOV functions)\n";
  return o;
}

}  // namespace npa::agent
