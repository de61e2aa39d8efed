// hypervisor/npactl/npactl_vf_format.h — `npactl vf ...` output from an AdminReply:
// a human table or one JSON object. Pure functions, unit-tested (the JSON is
// parsed back with python3's json module in the tests).
//
//   std::string out = json ? FormatVfJson(reply, /*list=*/true) : FormatVfTable(reply, true);
//
// JSON shape (stable, for scripts):
//   {"agent": NAME, "message": STRING|null, "vfs": [
//     {"pci": "0000:03:00.0", "vendor": "8086", "device": "10d3",
//      "subsystem_vendor": "8086", "subsystem_device": "0000", "class": "020000",
//      "revision": 0, "driver": "vfio-pci"|null, "iommu_group": 7|null,
//      "numa_node": 0|null, "sriov": null|{"totalvfs": N, "numvfs": N},
//      "physfn": "0000:..."|null, "reset_methods": ["flr", "bus"],
//      "in_pool": true, "state": "FREE"|null, "guest": "g0"|null,
//      "offer_id": 0, "last_error": STRING|null}, ...]}
#ifndef NPA_HYPERVISOR_NPACTL_NPACTL_VF_FORMAT_H_
#define NPA_HYPERVISOR_NPACTL_NPACTL_VF_FORMAT_H_

#include <string>

#include "include/npa/control.pb.h"

namespace npa::agent {

std::string FormatVfJson(const control::AdminReply& r);
// list: the inventory table; otherwise the message plus the VF's row.
std::string FormatVfTable(const control::AdminReply& r, bool list);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_NPACTL_NPACTL_VF_FORMAT_H_
