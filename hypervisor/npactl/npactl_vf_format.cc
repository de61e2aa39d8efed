#include "hypervisor/npactl/npactl_vf_format.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hypervisor/npactl/npactl_format.h"

namespace npa::agent {
namespace {

Json OrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }
Json OrNull(int v) { return v < 0 ? Json(nullptr) : Json(v); }

Json VfJson(const control::VfInfo& v) {
  Json sriov = nullptr;
  if (v.sriov_totalvfs() > 0) sriov = {{"totalvfs", v.sriov_totalvfs()}, {"numvfs", v.sriov_numvfs()}};
  return {{"pci", v.pci_address()},
          {"vendor", absl::StrFormat("%04x", v.vendor() & 0xffff)},
          {"device", absl::StrFormat("%04x", v.device() & 0xffff)},
          {"subsystem_vendor", absl::StrFormat("%04x", v.subsystem_vendor() & 0xffff)},
          {"subsystem_device", absl::StrFormat("%04x", v.subsystem_device() & 0xffff)},
          {"class", absl::StrFormat("%06x", v.class_code() & 0xffffff)},
          {"revision", v.revision()},
          {"driver", OrNull(v.driver())},
          {"iommu_group", OrNull(v.iommu_group())},
          {"numa_node", OrNull(v.numa_node())},
          {"sriov", std::move(sriov)},
          {"physfn", OrNull(v.physfn())},
          {"reset_methods", Json(std::vector<std::string>(v.reset_methods().begin(),
                                                          v.reset_methods().end()))},
          {"in_pool", v.in_pool()},
          {"state", OrNull(v.state())},
          {"guest", OrNull(v.guest())},
          {"offer_id", v.offer_id()},
          {"last_error", OrNull(v.last_error())}};
}

}  // namespace

std::string FormatVfJson(const control::AdminReply& r) {
  Json vfs = Json::array();
  for (const auto& v : r.vfs()) vfs.push_back(VfJson(v));
  return DumpJson({{"agent", r.agent_name()}, {"message", OrNull(r.message())}, {"vfs", std::move(vfs)}});
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
