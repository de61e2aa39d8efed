// hypervisor/vf/pci_inventory.cc
#include "hypervisor/vf/pci_inventory.h"

#include <sys/stat.h>

#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include <pci/pci.h>
}

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace npa::agent::vf {
namespace {

// libpci reports fatal errors through pacc->error and expects it never to
// return (its default calls exit(1)). We longjmp back into ScanLibpci instead;
// nothing with a destructor lives between the setjmp and the longjmp.
thread_local std::jmp_buf* t_pci_jmp = nullptr;
thread_local char t_pci_err[256];

[[noreturn]] void PciFatal(char* msg, ...) {
  va_list ap;
  va_start(ap, msg);
  std::vsnprintf(t_pci_err, sizeof(t_pci_err), msg, ap);
  va_end(ap);
  std::longjmp(*t_pci_jmp, 1);
}
void PciQuiet(char*, ...) {}

struct RawId {
  char bdf[16];
  uint16_t vendor, device, sv, sd;
  uint32_t cls;
};

// Returns the number of functions found (<= max) or -1 with t_pci_err set.
int ScanLibpci(char* sysfs_bus_pci, RawId* out, int max) {
  // The common failure, a missing sysfs tree, is caught before libpci is
  // entered: its fatal-error path can only be left by longjmp, which leaks
  // the access object (below).
  struct stat st;
  if (stat(sysfs_bus_pci, &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::snprintf(t_pci_err, sizeof(t_pci_err), "cannot open %s: %s", sysfs_bus_pci,
                  errno ? std::strerror(errno) : "not a directory");
    return -1;
  }
  std::jmp_buf jb;
  t_pci_jmp = &jb;
  struct pci_access* volatile pacc = nullptr;
  volatile int n = 0;
  if (setjmp(jb) != 0) {
    t_pci_jmp = nullptr;  // pacc is leaked: libpci's state is unknown mid-error.
    return -1;
  }
  pacc = pci_alloc();
  pacc->error = PciFatal;
  pacc->warning = PciQuiet;
  pacc->debug = PciQuiet;
  pacc->method = PCI_ACCESS_SYS_BUS_PCI;
  pci_set_param(pacc, const_cast<char*>("sysfs.path"), sysfs_bus_pci);
  pci_init(pacc);
  pci_scan_bus(pacc);
  for (struct pci_dev* d = pacc->devices; d != nullptr && n < max; d = d->next) {
    pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS);
    RawId& r = out[n];
    std::snprintf(r.bdf, sizeof(r.bdf), "%04x:%02x:%02x.%d", d->domain, d->bus, d->dev, d->func);
    r.vendor = d->vendor_id;
    r.device = d->device_id;
    r.sv = d->subsys_vendor_id;
    r.sd = d->subsys_id;
    r.cls = (static_cast<uint32_t>(d->device_class) << 8) | d->prog_if;
    n = n + 1;
  }
  pci_cleanup(pacc);
  t_pci_jmp = nullptr;
  return n;
}

constexpr int kMaxFunctions = 8192;

absl::StatusOr<int> ParseInt(absl::string_view what, absl::string_view text) {
  int v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v))
    return absl::InvalidArgumentError(absl::StrCat(what, ": '", text, "' is not an integer"));
  return v;
}

std::string DevPath(absl::string_view bdf, absl::string_view attr = "") {
  return attr.empty() ? absl::StrCat("bus/pci/devices/", bdf)
                      : absl::StrCat("bus/pci/devices/", bdf, "/", attr);
}

}  // namespace

absl::Status ValidateBdf(absl::string_view bdf) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("PCI address '", bdf, "' ", why, " (want DDDD:BB:DD.F, e.g. 0000:03:00.0)"));
  };
  if (bdf.size() != 12 || bdf[4] != ':' || bdf[7] != ':' || bdf[10] != '.') return bad("is malformed");
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11})
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(bdf[i]))) return bad("has a non-hex digit");
  int dev = std::stoi(std::string(bdf.substr(8, 2)), nullptr, 16);
  if (dev > 0x1f) return bad("has a device number above 1f");
  if (bdf[11] > '7') return bad("has a function number above 7");
  return absl::OkStatus();
}

absl::Status FillFromSysfs(const SysfsRoot& sys, PciFunction& f) {
  NPA_RETURN_IF_ERROR(ValidateBdf(f.bdf));
  if (!sys.Exists(DevPath(f.bdf)))
    return absl::NotFoundError(absl::StrCat("PCI function ", f.bdf, " not in ", sys.Path("bus/pci/devices")));
  if (sys.Exists(DevPath(f.bdf, "driver"))) {
    NPA_ASSIGN_OR_RETURN(std::string link, sys.ReadLink(DevPath(f.bdf, "driver")));
    f.driver = Basename(link);
  }
  if (sys.Exists(DevPath(f.bdf, "driver_override"))) {
    NPA_ASSIGN_OR_RETURN(std::string ov, sys.Read(DevPath(f.bdf, "driver_override")));
    f.driver_override = (ov == "(null)") ? "" : ov;
  }
  if (sys.Exists(DevPath(f.bdf, "iommu_group"))) {
    NPA_ASSIGN_OR_RETURN(std::string link, sys.ReadLink(DevPath(f.bdf, "iommu_group")));
    NPA_ASSIGN_OR_RETURN(int g, ParseInt(DevPath(f.bdf, "iommu_group"), Basename(link)));
    f.iommu_group = g;
  }
  if (sys.Exists(DevPath(f.bdf, "numa_node"))) {
    NPA_ASSIGN_OR_RETURN(std::string s, sys.Read(DevPath(f.bdf, "numa_node")));
    NPA_ASSIGN_OR_RETURN(int node, ParseInt(DevPath(f.bdf, "numa_node"), s));
    if (node >= 0) f.numa_node = node;
  }
  if (sys.Exists(DevPath(f.bdf, "sriov_totalvfs"))) {
    f.sriov_capable = true;
    NPA_ASSIGN_OR_RETURN(std::string t, sys.Read(DevPath(f.bdf, "sriov_totalvfs")));
    NPA_ASSIGN_OR_RETURN(f.sriov_totalvfs, ParseInt(DevPath(f.bdf, "sriov_totalvfs"), t));
    NPA_ASSIGN_OR_RETURN(std::string n, sys.Read(DevPath(f.bdf, "sriov_numvfs")));
    NPA_ASSIGN_OR_RETURN(f.sriov_numvfs, ParseInt(DevPath(f.bdf, "sriov_numvfs"), n));
  }
  NPA_ASSIGN_OR_RETURN(std::vector<std::string> entries, sys.List(DevPath(f.bdf)));
  std::vector<std::pair<int, std::string>> vfs;
  for (const std::string& e : entries) {
    if (e.rfind("virtfn", 0) != 0) continue;
    int idx = 0;
    if (!absl::SimpleAtoi(absl::string_view(e).substr(6), &idx) || idx < 0) continue;
    NPA_ASSIGN_OR_RETURN(std::string link, sys.ReadLink(DevPath(f.bdf, e)));
    vfs.emplace_back(idx, Basename(link));
  }
  std::sort(vfs.begin(), vfs.end());
  f.virtfns.clear();
  for (auto& [idx, bdf] : vfs) f.virtfns.push_back(std::move(bdf));
  if (sys.Exists(DevPath(f.bdf, "physfn"))) {
    NPA_ASSIGN_OR_RETURN(std::string link, sys.ReadLink(DevPath(f.bdf, "physfn")));
    f.physfn = Basename(link);
  }
  f.reset_methods.clear();
  if (sys.Exists(DevPath(f.bdf, "reset_method"))) {
    NPA_ASSIGN_OR_RETURN(std::string rm, sys.Read(DevPath(f.bdf, "reset_method")));
    for (absl::string_view m : absl::StrSplit(rm, ' ', absl::SkipWhitespace()))
      f.reset_methods.emplace_back(m);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PciFunction>> ListPciFunctions(const SysfsRoot& sys) {
  std::string bus = sys.Path("bus/pci");
  std::vector<RawId> raw(kMaxFunctions);
  int n = ScanLibpci(bus.data(), raw.data(), kMaxFunctions);
  if (n < 0) return absl::InternalError(absl::StrCat("libpci scan of ", bus, " failed: ", t_pci_err));
  std::vector<PciFunction> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    PciFunction f;
    f.bdf = raw[i].bdf;
    f.vendor = raw[i].vendor;
    f.device = raw[i].device;
    f.subsystem_vendor = raw[i].sv;
    f.subsystem_device = raw[i].sd;
    f.class_code = raw[i].cls;
    NPA_RETURN_IF_ERROR(FillFromSysfs(sys, f));
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const PciFunction& a, const PciFunction& b) { return a.bdf < b.bdf; });
  return out;
}

absl::StatusOr<PciFunction> DescribePciFunction(const SysfsRoot& sys, absl::string_view bdf) {
  NPA_RETURN_IF_ERROR(ValidateBdf(bdf));
  std::string want = absl::AsciiStrToLower(bdf);
  NPA_ASSIGN_OR_RETURN(std::vector<PciFunction> all, ListPciFunctions(sys));
  for (PciFunction& f : all)
    if (f.bdf == want) return std::move(f);
  return absl::NotFoundError(absl::StrCat("PCI function ", bdf, " not found under ", sys.Path("bus/pci")));
}

namespace {

// nlohmann::ordered_json (Debian's nlohmann-json3-dev) keeps the keys in the
// order written, the order npactl and the lab have always printed; invalid
// UTF-8 in a sysfs string (a driver name) becomes U+FFFD, not an exception.
using Json = nlohmann::ordered_json;

Json StrOrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

Json FunctionJson(const PciFunction& f) {
  Json o;
  o["bdf"] = f.bdf;
  o["vendor"] = absl::StrFormat("%04x", f.vendor);
  o["device"] = absl::StrFormat("%04x", f.device);
  o["subsystem_vendor"] = absl::StrFormat("%04x", f.subsystem_vendor);
  o["subsystem_device"] = absl::StrFormat("%04x", f.subsystem_device);
  o["class"] = absl::StrFormat("%06x", f.class_code);
  o["driver"] = StrOrNull(f.driver);
  o["driver_override"] = StrOrNull(f.driver_override);
  o["iommu_group"] = f.iommu_group ? Json(*f.iommu_group) : Json(nullptr);
  o["numa_node"] = f.numa_node ? Json(*f.numa_node) : Json(nullptr);
  if (f.sriov_capable) {
    Json sr;
    sr["totalvfs"] = f.sriov_totalvfs;
    sr["numvfs"] = f.sriov_numvfs;
    sr["virtfns"] = f.virtfns;
    o["sriov"] = std::move(sr);
  } else {
    o["sriov"] = nullptr;
  }
  o["physfn"] = StrOrNull(f.physfn);
  o["reset_methods"] = f.reset_methods;
  return o;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::string PciFunctionToJson(const PciFunction& f) { return Dump(FunctionJson(f)); }

std::string PciFunctionsToJson(const std::vector<PciFunction>& fns) {
  Json all = Json::array();
  for (const PciFunction& f : fns) all.push_back(FunctionJson(f));
  Json o;
  o["functions"] = std::move(all);
  return Dump(o);
}

}  // namespace npa::agent::vf
