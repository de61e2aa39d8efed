// hypervisor/vf/vf_bind.cc
#include "hypervisor/vf/vf_bind.h"

#include <algorithm>
#include <array>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/vf/pci_inventory.h"

namespace npa::agent::vf {
namespace {

constexpr absl::string_view kVfio = "vfio-pci";
constexpr absl::Duration kPoll = absl::Milliseconds(10);

std::string Dev(absl::string_view bdf, absl::string_view attr) {
  return absl::StrCat("bus/pci/devices/", bdf, "/", attr);
}

absl::Status CheckFunction(const SysfsRoot& sys, absl::string_view bdf) {
  NPA_RETURN_IF_ERROR(ValidateBdf(bdf));
  if (!sys.Exists(absl::StrCat("bus/pci/devices/", bdf)))
    return absl::NotFoundError(absl::StrCat("PCI function ", bdf, " does not exist"));
  return absl::OkStatus();
}

absl::StatusOr<int> ReadInt(const SysfsRoot& sys, const std::string& rel) {
  NPA_ASSIGN_OR_RETURN(std::string s, sys.Read(rel));
  int v = 0;
  if (!absl::SimpleAtoi(s, &v))
    return absl::InvalidArgumentError(absl::StrCat(sys.Path(rel), ": '", s, "' is not an integer"));
  return v;
}

}  // namespace

VfBinder::VfBinder(SysfsRoot& sys, absl::Duration wait) : sys_(sys), wait_(wait) {}

absl::StatusOr<std::string> VfBinder::CurrentDriver(absl::string_view bdf) const {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, bdf));
  if (!sys_.Exists(Dev(bdf, "driver"))) return std::string();
  NPA_ASSIGN_OR_RETURN(std::string link, sys_.ReadLink(Dev(bdf, "driver")));
  return Basename(link);
}

absl::Status VfBinder::WaitForDriver(absl::string_view bdf, absl::string_view want) const {
  const absl::Time deadline = absl::Now() + wait_;
  std::string cur;
  for (;;) {
    NPA_ASSIGN_OR_RETURN(cur, CurrentDriver(bdf));
    if (cur == want) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPoll);
  }
  return absl::FailedPreconditionError(
      absl::StrCat(bdf, ": driver is '", cur, "' after ", absl::FormatDuration(wait_), ", expected '",
                   want, "'", want == kVfio ? " (is the vfio-pci module loaded?)" : ""));
}

absl::Status VfBinder::SetResetMethod(absl::string_view bdf, absl::string_view methods) {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, bdf));
  static constexpr std::array<absl::string_view, 8> kKnown = {
      "flr", "af_flr", "pm", "bus", "cxl_bus", "device_specific", "acpi", "default"};
  std::vector<absl::string_view> parts = absl::StrSplit(methods, ' ', absl::SkipWhitespace());
  if (parts.empty()) return absl::InvalidArgumentError(absl::StrCat(bdf, ": empty reset method"));
  for (absl::string_view p : parts) {
    if (std::find(kKnown.begin(), kKnown.end(), p) == kKnown.end())
      return absl::InvalidArgumentError(absl::StrCat(bdf, ": unknown reset method '", p,
                                                     "' (flr af_flr pm bus cxl_bus device_specific acpi default)"));
  }
  if (!sys_.Exists(Dev(bdf, "reset_method")))
    return absl::FailedPreconditionError(absl::StrCat(bdf, " has no reset_method (no reset available)"));
  return sys_.Write(Dev(bdf, "reset_method"), methods);
}

absl::StatusOr<Binding> VfBinder::BindToVfio(absl::string_view bdf, const BindOptions& opts) {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, bdf));
  Binding b;
  b.bdf = std::string(bdf);
  NPA_ASSIGN_OR_RETURN(b.original_driver, CurrentDriver(bdf));
  if (sys_.Exists(Dev(bdf, "driver_override"))) {
    NPA_ASSIGN_OR_RETURN(std::string ov, sys_.Read(Dev(bdf, "driver_override")));
    b.original_override = ov == "(null)" ? "" : ov;
  } else {
    return absl::FailedPreconditionError(absl::StrCat(bdf, " has no driver_override (kernel too old?)"));
  }
  if (!opts.reset_method.empty()) {
    if (sys_.Exists(Dev(bdf, "reset_method"))) {
      NPA_ASSIGN_OR_RETURN(b.original_reset_method, sys_.Read(Dev(bdf, "reset_method")));
    }
    NPA_RETURN_IF_ERROR(SetResetMethod(bdf, opts.reset_method));
  }
  if (b.original_driver == kVfio) return b;

  NPA_RETURN_IF_ERROR(sys_.Write(Dev(bdf, "driver_override"), kVfio));
  absl::Status st;
  if (!b.original_driver.empty()) st = sys_.Write(Dev(bdf, "driver/unbind"), bdf);
  // drivers_probe matches driver_override first; vfio-pci's probe is synchronous.
  if (st.ok()) st = sys_.Write("bus/pci/drivers_probe", bdf);
  if (st.ok()) st = WaitForDriver(bdf, kVfio);
  if (!st.ok()) {
    NPA_LOG(Warn, "vf: binding %s to vfio-pci failed, rolling back: %s", b.bdf.c_str(),
            std::string(st.message()).c_str());
    absl::Status rb = Restore(b);
    if (!rb.ok()) return absl::Status(st.code(), absl::StrCat(st.message(), "; rollback also failed: ", rb.message()));
    return st;
  }
  NPA_LOG(Info, "vf: %s bound to vfio-pci (was '%s')", b.bdf.c_str(), b.original_driver.c_str());
  return b;
}

absl::Status VfBinder::Restore(const Binding& b) {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, b.bdf));
  if (b.original_driver == kVfio) return absl::OkStatus();
  NPA_ASSIGN_OR_RETURN(std::string cur, CurrentDriver(b.bdf));
  if (cur == kVfio) NPA_RETURN_IF_ERROR(sys_.Write(Dev(b.bdf, "driver/unbind"), b.bdf));
  // A lone newline clears driver_override (the kernel stores "" as unset).
  NPA_RETURN_IF_ERROR(sys_.Write(Dev(b.bdf, "driver_override"),
                                 b.original_override.empty() ? std::string("\n") : b.original_override));
  if (!b.original_reset_method.empty()) {
    absl::Status rs = sys_.Write(Dev(b.bdf, "reset_method"), b.original_reset_method);
    if (!rs.ok()) NPA_LOG(Warn, "vf: %s: could not restore reset_method: %s", b.bdf.c_str(), std::string(rs.message()).c_str());
  }
  if (b.original_driver.empty()) return absl::OkStatus();
  NPA_RETURN_IF_ERROR(sys_.Write("bus/pci/drivers_probe", b.bdf));
  NPA_ASSIGN_OR_RETURN(cur, CurrentDriver(b.bdf));
  if (cur.empty()) {
    // drivers_probe picks by id table; bind explicitly if the original driver
    // claims the device only through a dynamic id or an override.
    absl::Status bs = sys_.Write(absl::StrCat("bus/pci/drivers/", b.original_driver, "/bind"), b.bdf);
    if (!bs.ok()) NPA_LOG(Warn, "vf: %s: explicit bind to %s: %s", b.bdf.c_str(), b.original_driver.c_str(), std::string(bs.message()).c_str());
  }
  NPA_RETURN_IF_ERROR(WaitForDriver(b.bdf, b.original_driver));
  NPA_LOG(Info, "vf: %s restored to '%s'", b.bdf.c_str(), b.original_driver.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> VfBinder::EnableVfs(absl::string_view pf, int num_vfs, bool autoprobe) {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, pf));
  if (!sys_.Exists(Dev(pf, "sriov_totalvfs")))
    return absl::FailedPreconditionError(absl::StrCat(pf, " is not an SR-IOV physical function"));
  NPA_ASSIGN_OR_RETURN(int total, ReadInt(sys_, Dev(pf, "sriov_totalvfs")));
  if (num_vfs < 1 || num_vfs > total)
    return absl::OutOfRangeError(absl::StrCat(pf, ": cannot enable ", num_vfs, " VFs (sriov_totalvfs=", total, ")"));
  NPA_ASSIGN_OR_RETURN(int cur, ReadInt(sys_, Dev(pf, "sriov_numvfs")));
  if (sys_.Exists(Dev(pf, "sriov_drivers_autoprobe")))
    NPA_RETURN_IF_ERROR(sys_.Write(Dev(pf, "sriov_drivers_autoprobe"), autoprobe ? "1" : "0"));
  if (cur != num_vfs) {
    if (cur != 0) NPA_RETURN_IF_ERROR(sys_.Write(Dev(pf, "sriov_numvfs"), "0"));
    NPA_RETURN_IF_ERROR(sys_.Write(Dev(pf, "sriov_numvfs"), absl::StrCat(num_vfs)));
  }
  std::vector<std::string> vfs;
  const absl::Time deadline = absl::Now() + wait_;
  for (int i = 0; i < num_vfs; ++i) {
    const std::string link = Dev(pf, absl::StrCat("virtfn", i));
    while (!sys_.Exists(link)) {
      if (absl::Now() >= deadline)
        return absl::DeadlineExceededError(
            absl::StrCat(pf, ": virtfn", i, " did not appear within ", absl::FormatDuration(wait_)));
      absl::SleepFor(kPoll);
    }
    NPA_ASSIGN_OR_RETURN(std::string target, sys_.ReadLink(link));
    vfs.push_back(Basename(target));
  }
  NPA_LOG(Info, "vf: %s: %d VFs enabled", std::string(pf).c_str(), num_vfs);
  return vfs;
}

absl::Status VfBinder::DisableVfs(absl::string_view pf) {
  NPA_RETURN_IF_ERROR(CheckFunction(sys_, pf));
  if (!sys_.Exists(Dev(pf, "sriov_numvfs")))
    return absl::FailedPreconditionError(absl::StrCat(pf, " is not an SR-IOV physical function"));
  return sys_.Write(Dev(pf, "sriov_numvfs"), "0");
}

}  // namespace npa::agent::vf
