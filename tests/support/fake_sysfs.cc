// tests/support/fake_sysfs.cc
#include "tests/support/fake_sysfs.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace npa::agent::vf {
namespace fs = std::filesystem;

std::unique_ptr<FakeSysfs> FakeSysfs::Create() {
  std::string tmpl = (fs::temp_directory_path() / "npa-fake-sysfs-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return nullptr;
  auto s = std::unique_ptr<FakeSysfs>(new FakeSysfs(tmpl));
  fs::create_directories(s->Path("bus/pci/devices"));
  fs::create_directories(s->Path("bus/pci/drivers"));
  fs::create_directories(s->Path("kernel/iommu_groups"));
  s->Put("bus/pci/drivers_probe", "");
  return s;
}

FakeSysfs::~FakeSysfs() {
  std::error_code ec;
  fs::remove_all(root(), ec);
}

void FakeSysfs::Put(const std::string& rel, const std::string& content) {
  fs::create_directories(fs::path(Path(rel)).parent_path());
  std::ofstream(Path(rel), std::ios::binary | std::ios::trunc) << content;
}

void FakeSysfs::Link(const std::string& rel, const std::string& target) {
  std::error_code ec;
  fs::remove(Path(rel), ec);
  fs::create_symlink(target, Path(rel));
}

void FakeSysfs::AddDriver(const std::string& name) {
  Put(absl::StrCat("bus/pci/drivers/", name, "/bind"), "");
  Put(absl::StrCat("bus/pci/drivers/", name, "/unbind"), "");
}

void FakeSysfs::BindTo(const std::string& bdf, const std::string& driver) {
  Link(absl::StrCat("bus/pci/devices/", bdf, "/driver"), absl::StrCat("../../drivers/", driver));
}

void FakeSysfs::AddFunction(const Fn& fn) {
  const std::string d = absl::StrCat("bus/pci/devices/", fn.bdf, "/");
  Put(d + "vendor", absl::StrFormat("0x%04x\n", fn.vendor));
  Put(d + "device", absl::StrFormat("0x%04x\n", fn.device));
  Put(d + "subsystem_vendor", absl::StrFormat("0x%04x\n", fn.subsystem_vendor));
  Put(d + "subsystem_device", absl::StrFormat("0x%04x\n", fn.subsystem_device));
  Put(d + "class", absl::StrFormat("0x%06x\n", fn.class_code));
  // A type-0 header for libpci, which reads config space for the header type.
  std::string cfg(64, '\0');
  auto put16 = [&](size_t off, uint16_t v) { cfg[off] = char(v & 0xff); cfg[off + 1] = char(v >> 8); };
  put16(0, fn.vendor);
  put16(2, fn.device);
  cfg[9] = char(fn.class_code & 0xff);
  cfg[10] = char((fn.class_code >> 8) & 0xff);
  cfg[11] = char((fn.class_code >> 16) & 0xff);
  put16(0x2c, fn.subsystem_vendor);
  put16(0x2e, fn.subsystem_device);
  Put(d + "config", cfg);
  Put(d + "irq", "0\n");
  Put(d + "resource", "");
  Put(d + "driver_override", "(null)\n");
  Put(d + "numa_node", absl::StrCat(fn.numa_node, "\n"));
  if (!fn.reset_method.empty()) Put(d + "reset_method", fn.reset_method + "\n");
  if (fn.iommu_group >= 0) {
    fs::create_directories(Path(absl::StrCat("kernel/iommu_groups/", fn.iommu_group, "/devices")));
    Link(d + "iommu_group", absl::StrCat("../../../../kernel/iommu_groups/", fn.iommu_group));
  }
  if (fn.sriov_totalvfs > 0) {
    Put(d + "sriov_totalvfs", absl::StrCat(fn.sriov_totalvfs, "\n"));
    Put(d + "sriov_numvfs", "0\n");
    Put(d + "sriov_drivers_autoprobe", "1\n");
  }
  if (!fn.driver.empty()) BindTo(fn.bdf, fn.driver);
  fns_[fn.bdf] = fn;
}

absl::Status FakeSysfs::Write(absl::string_view rel_in, absl::string_view value_in) {
  NPA_RETURN_IF_ERROR(CheckRelative(rel_in));
  const std::string rel(rel_in);
  const std::string value(value_in);
  write_log.push_back(absl::StrCat(rel, "=", value));
  const std::string v(absl::StripTrailingAsciiWhitespace(value));
  auto dev = [&](const std::string& bdf, const std::string& attr) {
    return absl::StrCat("bus/pci/devices/", bdf, "/", attr);
  };
  if (!Exists(rel)) return ErrnoError(ENOENT, "open ", Path(rel), " for writing");

  if (absl::EndsWith(rel, "/unbind")) {
    if (!Exists(dev(v, "driver"))) return ErrnoError(ENODEV, "write '", v, "' to ", Path(rel));
    fs::remove(Path(dev(v, "driver")));
    return absl::OkStatus();
  }
  if (rel == "bus/pci/drivers_probe") {
    if (!fns_.count(v)) return ErrnoError(ENODEV, "write '", v, "' to ", Path(rel));
    if (Exists(dev(v, "driver"))) return absl::OkStatus();
    NPA_ASSIGN_OR_RETURN(std::string ov, Read(dev(v, "driver_override")));
    std::string drv = ov == "(null)" ? fns_[v].driver : ov;
    if (!drv.empty() && Exists(absl::StrCat("bus/pci/drivers/", drv)) && !refuse_bind.count(drv)) BindTo(v, drv);
    return absl::OkStatus();
  }
  if (absl::StartsWith(rel, "bus/pci/drivers/") && absl::EndsWith(rel, "/bind")) {
    std::string drv = rel.substr(16, rel.size() - 16 - 5);
    if (!fns_.count(v)) return ErrnoError(ENODEV, "write '", v, "' to ", Path(rel));
    if (Exists(dev(v, "driver"))) return ErrnoError(EBUSY, "write '", v, "' to ", Path(rel));
    if (refuse_bind.count(drv)) return ErrnoError(ENODEV, "write '", v, "' to ", Path(rel));
    BindTo(v, drv);
    return absl::OkStatus();
  }
  if (absl::EndsWith(rel, "/driver_override")) {
    Put(rel, v.empty() ? "(null)\n" : v + "\n");
    return absl::OkStatus();
  }
  if (absl::EndsWith(rel, "/sriov_numvfs")) {
    const std::string pf = rel.substr(16, 12);
    int n = 0, cur = 0;
    if (!absl::SimpleAtoi(v, &n) || n < 0) return ErrnoError(EINVAL, "write '", v, "' to ", Path(rel));
    NPA_ASSIGN_OR_RETURN(std::string cs, Read(rel));
    (void)absl::SimpleAtoi(cs, &cur);
    const Fn pfn = fns_[pf];
    if (n > pfn.sriov_totalvfs) return ErrnoError(ERANGE, "write '", v, "' to ", Path(rel));
    if (n != 0 && cur != 0 && n != cur) return ErrnoError(EBUSY, "write '", v, "' to ", Path(rel));
    NPA_ASSIGN_OR_RETURN(std::string ap, Read(dev(pf, "sriov_drivers_autoprobe")));
    for (int i = 0; i < cur; ++i) {  // remove the old VFs
      std::string vf = absl::StrFormat("%s.%d", pf.substr(0, 10), (pf[11] - '0') + 1 + i);
      fs::remove_all(Path(absl::StrCat("bus/pci/devices/", vf)));
      fs::remove(Path(dev(pf, absl::StrCat("virtfn", i))));
      fns_.erase(vf);
    }
    for (int i = 0; i < n; ++i) {
      Fn vf;
      vf.bdf = absl::StrFormat("%s.%d", pf.substr(0, 10), (pf[11] - '0') + 1 + i);
      vf.vendor = pfn.vendor;
      vf.device = pfn.vf_device;
      vf.class_code = pfn.class_code;
      vf.iommu_group = pfn.iommu_group >= 0 ? pfn.iommu_group + 1 + i : -1;
      vf.reset_method = "flr";
      vf.driver = ap == "1" ? pfn.driver : "";
      AddFunction(vf);
      fns_[vf.bdf].driver = pfn.driver;  // what drivers_probe would pick later
      Link(dev(pf, absl::StrCat("virtfn", i)), absl::StrCat("../", vf.bdf));
      Link(dev(vf.bdf, "physfn"), absl::StrCat("../", pf));
    }
    Put(rel, absl::StrCat(n, "\n"));
    return absl::OkStatus();
  }
  return SysfsRoot::Write(rel, value);
}

}  // namespace npa::agent::vf
