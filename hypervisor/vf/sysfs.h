// hypervisor/vf/sysfs.h — the filesystem seam under VF inventory and binding.
//
// Every sysfs access of the VF library goes through a SysfsRoot, so the same
// code runs against the real /sys and against a fake tree in a temp dir (unit
// tests; a test seam). Paths are relative to the root ("bus/pci/devices/
// 0000:03:00.0/driver_override").
//
//   npa::agent::vf::SysfsRoot sys;                      // the real /sys
//   NPA_ASSIGN_OR_RETURN(std::string drv, sys.ReadLink("bus/pci/devices/" + bdf + "/driver"));
//   NPA_RETURN_IF_ERROR(sys.Write("bus/pci/devices/" + bdf + "/driver_override", "vfio-pci"));
//
// Errors: a relative path that is absolute or has an empty, "." or ".."
// component is rejected with kInvalidArgument (paths carry operator-supplied
// BDFs); a missing file is kNotFound; other failures carry the errno and name
// the path. The methods are virtual so tests can add kernel behaviour (a write
// to "unbind" removing the "driver" link, and so on).
#ifndef NPA_HYPERVISOR_VF_SYSFS_H_
#define NPA_HYPERVISOR_VF_SYSFS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace npa::agent::vf {

class SysfsRoot {
 public:
  // `root` is the directory that stands for /sys.
  explicit SysfsRoot(std::string root = "/sys");
  virtual ~SysfsRoot() = default;
  SysfsRoot(const SysfsRoot&) = delete;
  SysfsRoot& operator=(const SysfsRoot&) = delete;

  const std::string& root() const { return root_; }
  // root + "/" + rel, without validation (for messages and for libpci).
  std::string Path(absl::string_view rel) const;

  // Whole attribute, one trailing newline removed. At most 64 KiB.
  virtual absl::StatusOr<std::string> Read(absl::string_view rel) const;
  // One write(2) of `value` (sysfs attributes take a value per write). The file
  // must exist: sysfs never creates attributes, so a typo is kNotFound.
  virtual absl::Status Write(absl::string_view rel, absl::string_view value);
  // Entry names of a directory, sorted, without "." and "..".
  virtual absl::StatusOr<std::vector<std::string>> List(absl::string_view rel) const;
  // Target of a symbolic link, as stored.
  virtual absl::StatusOr<std::string> ReadLink(absl::string_view rel) const;
  virtual bool Exists(absl::string_view rel) const;

  // Checks a relative path (see the header comment).
  static absl::Status CheckRelative(absl::string_view rel);

 private:
  std::string root_;
};

// Last component of a path or link target ("../../../bus/pci/drivers/e1000e"
// -> "e1000e").
std::string Basename(absl::string_view path);

}  // namespace npa::agent::vf

#endif  // NPA_HYPERVISOR_VF_SYSFS_H_
