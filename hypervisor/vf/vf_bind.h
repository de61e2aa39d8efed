// hypervisor/vf/vf_bind.h — moving PCI functions between their kernel driver
// and vfio-pci, creating SR-IOV VFs, and choosing the reset method.
//
//   npa::agent::vf::SysfsRoot sys;
//   npa::agent::vf::VfBinder binder(sys);
//   NPA_ASSIGN_OR_RETURN(auto vfs, binder.EnableVfs(pf, 2));          // virtfn0, virtfn1
//   NPA_ASSIGN_OR_RETURN(auto b, binder.BindToVfio(vfs[0], {.reset_method = "flr"}));
//   ... open it with hypervisor/vf/vfio.h ...
//   NPA_RETURN_IF_ERROR(binder.Restore(b));                           // back to its driver
//
// Sysfs effects (docs/vf-management.md): BindToVfio writes `driver_override`
// = "vfio-pci", `driver/unbind` (if bound) and `bus/pci/drivers_probe`, then
// waits (bounded) until the `driver` link names vfio-pci. Restore undoes it:
// unbind from vfio-pci, put back the previous `driver_override` (usually
// cleared), `drivers_probe`, and if the original driver did not claim the
// function, an explicit `drivers/<orig>/bind`. Every failure names the
// function, the file and the kernel's errno.
#ifndef NPA_HYPERVISOR_VF_VF_BIND_H_
#define NPA_HYPERVISOR_VF_VF_BIND_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hypervisor/vf/sysfs.h"

namespace npa::agent::vf {

// What BindToVfio changed, so Restore can put it back.
struct Binding {
  std::string bdf;
  std::string original_driver;    // "" if the function had no driver
  std::string original_override;  // "" if driver_override was unset
  std::string original_reset_method;  // "" if unchanged
};

struct BindOptions {
  // Written to `reset_method` before binding, e.g. "bus" for QEMU's e1000e,
  // whose default "pm" reset is a silent no-op (NOTES pitfall). "" = leave.
  std::string reset_method;
};

class VfBinder {
 public:
  // `wait` bounds every wait for the kernel (a driver link, virtfn links).
  explicit VfBinder(SysfsRoot& sys, absl::Duration wait = absl::Seconds(5));

  // kFailedPrecondition if vfio-pci did not claim the function in time (module
  // not loaded?); the override is rolled back then. Already on vfio-pci: no-op,
  // and the Binding's original_driver is "vfio-pci".
  absl::StatusOr<Binding> BindToVfio(absl::string_view bdf, const BindOptions& opts = {});
  // Undo BindToVfio. kFailedPrecondition if the original driver does not come back.
  absl::Status Restore(const Binding& b);

  // One of flr, af_flr, pm, bus, cxl_bus, device_specific, acpi, or several
  // space-separated, or "default". kInvalidArgument for other names; the
  // kernel's EINVAL if the function does not support the method.
  absl::Status SetResetMethod(absl::string_view bdf, absl::string_view methods);

  // Sets `sriov_drivers_autoprobe` (false keeps host drivers off the new VFs),
  // then `sriov_numvfs` (through 0 if a different non-zero count is set: the
  // kernel refuses to change one non-zero count to another), then waits for
  // virtfn0..N-1. Returns the VF BDFs in index order. kOutOfRange if num_vfs
  // exceeds sriov_totalvfs; kFailedPrecondition if `pf` is not an SR-IOV PF.
  absl::StatusOr<std::vector<std::string>> EnableVfs(absl::string_view pf, int num_vfs,
                                                     bool autoprobe = false);
  absl::Status DisableVfs(absl::string_view pf);

  // Current driver name, "" if none.
  absl::StatusOr<std::string> CurrentDriver(absl::string_view bdf) const;

 private:
  absl::Status WaitForDriver(absl::string_view bdf, absl::string_view want) const;

  SysfsRoot& sys_;
  absl::Duration wait_;
};

}  // namespace npa::agent::vf

#endif  // NPA_HYPERVISOR_VF_VF_BIND_H_
