// conform/abi_checks.cc — see abi_checks.h.
#include "conform/abi_checks.h"

#include <dlfcn.h>

#include <cstddef>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "npa/plugin.h"
#include "shell/vf/plugin_probe.h"

namespace npa::conform {
namespace {

struct OpName {
  size_t offset;
  const char* name;
  bool mandatory;  // (M) in npa/plugin.h
};

// Every op of the ABI 1.x tables, in header order; (M) as npa/plugin.h marks
// them (the loader refuses a NULL mandatory op: shell/vf/plugin_loader.cc).
constexpr OpName kCtrlOps[] = {
    {offsetof(npa_plugin_ctrl_ops, probe), "probe", true},
    {offsetof(npa_plugin_ctrl_ops, remove), "remove", true},
    {offsetof(npa_plugin_ctrl_ops, get_caps), "get_caps", true},
    {offsetof(npa_plugin_ctrl_ops, configure), "configure", true},
    {offsetof(npa_plugin_ctrl_ops, start), "start", true},
    {offsetof(npa_plugin_ctrl_ops, stop), "stop", true},
    {offsetof(npa_plugin_ctrl_ops, queue), "queue", true},
    {offsetof(npa_plugin_ctrl_ops, link_status), "link_status", true},
    {offsetof(npa_plugin_ctrl_ops, queue_stats), "queue_stats", true},
    {offsetof(npa_plugin_ctrl_ops, quiesce), "quiesce", false},
    {offsetof(npa_plugin_ctrl_ops, reset), "reset", false},
    {offsetof(npa_plugin_ctrl_ops, set_mac), "set_mac", false},
    {offsetof(npa_plugin_ctrl_ops, set_mtu), "set_mtu", false},
    {offsetof(npa_plugin_ctrl_ops, vlan_filter), "vlan_filter", false},
    {offsetof(npa_plugin_ctrl_ops, irq_handler), "irq_handler", false},
    {offsetof(npa_plugin_ctrl_ops, rss_set), "rss_set", false},  // ABI 1.1
};
constexpr OpName kFastOps[] = {
    {offsetof(npa_plugin_fast_ops, rx_burst), "rx_burst", true},
    {offsetof(npa_plugin_fast_ops, tx_burst), "tx_burst", true},
    {offsetof(npa_plugin_fast_ops, tx_reap), "tx_reap", false},
    {offsetof(npa_plugin_fast_ops, rx_intr_enable), "rx_intr_enable", false},
    {offsetof(npa_plugin_fast_ops, get_irq_vector), "get_irq_vector", false},
};

// A function-pointer field of a table copy, read without naming it.
bool OpPresent(const void* table, size_t offset) {
  void (*fn)(void);
  memcpy(&fn, static_cast<const char*>(table) + offset, sizeof(fn));
  return fn != nullptr;
}

// "ctrl 9/9 mandatory (optional: quiesce reset)" or the missing ones.
template <size_t N>
void DescribeOps(const char* table_name, const void* table, const OpName (&ops)[N],
                 std::vector<std::string>* missing, std::string* out) {
  int mandatory = 0, have = 0;
  std::vector<std::string> optional;
  for (const OpName& op : ops) {
    bool present = OpPresent(table, op.offset);
    if (op.mandatory) {
      mandatory++;
      if (present) have++;
      else missing->push_back(absl::StrCat(table_name, ".", op.name));
    } else if (present) {
      optional.push_back(op.name);
    }
  }
  absl::StrAppend(out, out->empty() ? "" : "; ", table_name, " ", have, "/", mandatory,
                  " mandatory, optional: ", optional.empty() ? "none" : absl::StrJoin(optional, " "));
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// The entry symbol, looked up in an object the loader already accepted.
// dlopen of the same path only takes another reference.
class EntryHandle {
 public:
  explicit EntryHandle(const std::string& path) : h_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
  ~EntryHandle() {
    if (h_ != nullptr) dlclose(h_);
  }
  EntryHandle(const EntryHandle&) = delete;
  EntryHandle& operator=(const EntryHandle&) = delete;
  npa_plugin_entry_fn entry() const {
    return h_ == nullptr ? nullptr
                         : reinterpret_cast<npa_plugin_entry_fn>(dlsym(h_, NPA_PLUGIN_ENTRY_NAME));
  }

 private:
  void* h_;
};

}  // namespace

std::vector<AbiCheck> RunAbiChecks(const std::string& path_in, const shell::LoadOptions& opts_in) {
  const std::string path = path_in.find('/') == std::string::npos ? "./" + path_in : path_in;
  shell::LoadOptions opts = opts_in;
  opts.log = false;  // the checks report; the loader's warnings would repeat them
  std::vector<AbiCheck> out;
  auto add = [&](const char* name, bool pass, std::string detail) {
    out.push_back({name, pass, std::move(detail)});
    return pass;
  };

  // Gate 1: who may have written the file (the loader refuses it otherwise).
  auto real = shell::TrustedPluginPath(path);
  if (!add("file_trust", real.ok(),
           real.ok() ? "root-owned, not group/world-writable: " + *real : Msg(real.status())))
    return out;

  // Gate 2: the whole loader in a child first: a crash or a hang in the
  // plug-in's constructors or entry is a FAIL line, not the runner's end.
  auto tables = shell::ProbePluginInChild(path, opts);
  if (!add("child_load", tables.ok(),
           tables.ok() ? absl::StrCat("'", tables->name, "' ", tables->version, " by ",
                                      tables->vendor, ", read in a child process")
                       : Msg(tables.status())))
    return out;

  // Gate 3: the same load in this process (what the shell does with the
  // plug-in it chose).
  auto loaded = shell::LoadPlugin(path, opts);
  if (!add("loader_accepts", loaded.ok(),
           loaded.ok() ? absl::StrCat("'", (*loaded)->name(), "' loaded by the shell's loader")
                       : Msg(loaded.status())))
    return out;
  const shell::LoadedPlugin& p = **loaded;

  // The raw tables, as the plug-in hands them to this header's shell.
  EntryHandle h(path);
  npa_plugin_entry_fn entry = h.entry();
  npa_plugin_query q{sizeof(q), NPA_PLUGIN_ABI_MAJOR, NPA_PLUGIN_ABI_MINOR};
  const npa_plugin_info* raw = entry ? entry(&q) : nullptr;
  if (raw == nullptr) {
    add("abi_version", false, "the entry answered NULL on a second call (it must return static data)");
  } else {
    // int: with a required minor of 0 an unsigned comparison is always true.
    const int minor_margin = int{p.abi_minor()} - NPA_PLUGIN_ABI_MINOR_REQUIRED;
    add("abi_version", p.abi_major() == NPA_PLUGIN_ABI_MAJOR && minor_margin >= 0,
        absl::StrFormat("ABI %u.%u (this header %u.%u, required minor %u); struct sizes: info %u, "
                        "ctrl %u, fast %u (ABI 1.0: %u, %u, %u)",
                        p.abi_major(), p.abi_minor(), NPA_PLUGIN_ABI_MAJOR, NPA_PLUGIN_ABI_MINOR,
                        NPA_PLUGIN_ABI_MINOR_REQUIRED, raw->struct_size, raw->ctrl->struct_size,
                        raw->fast->struct_size, shell::kPluginInfoMinSize, shell::kCtrlOpsMinSize,
                        shell::kFastOpsMinSize));
  }

  std::vector<std::string> missing;
  std::string ops;
  DescribeOps("ctrl", &p.ctrl(), kCtrlOps, &missing, &ops);
  DescribeOps("fast", &p.fast(), kFastOps, &missing, &ops);
  add("entry_points", missing.empty(),
      missing.empty() ? ops : "mandatory op(s) NULL: " + absl::StrJoin(missing, " "));

  // An entry that matches every function would claim NICs it cannot drive:
  // the shell picks the most specific match, but a wildcard still wins
  // wherever no other plug-in is installed.
  std::vector<std::string> ids, wild;
  for (size_t i = 0; i < p.ids().size(); i++) {
    const npa_pci_id& id = p.ids()[i];
    if (id.vendor == NPA_PCI_ANY_ID && id.device == NPA_PCI_ANY_ID && id.class_mask == 0)
      wild.push_back(absl::StrCat("id_table[", i, "]"));
    if (ids.size() < 4) {
      ids.push_back(id.vendor == NPA_PCI_ANY_ID
                        ? absl::StrFormat("class %06x/%06x", id.class_code, id.class_mask)
                        : absl::StrFormat("%04x:%04x", id.vendor, id.device));
    }
  }
  add("id_table", wild.empty(),
      wild.empty() ? absl::StrCat(p.ids().size(), " entr", p.ids().size() == 1 ? "y" : "ies", ": ",
                                  absl::StrJoin(ids, " "), p.ids().size() > ids.size() ? " ..." : "")
                   : absl::StrCat(absl::StrJoin(wild, " "),
                                  " match(es) every PCI function (vendor and device ANY, no "
                                  "class mask); name the vendor, device or class you drive"));

  // A shell of another major must be refused (npa/plugin.h, the entry).
  if (entry == nullptr) {
    add("refuses_other_major", false, "no " NPA_PLUGIN_ENTRY_NAME);
  } else {
    npa_plugin_query other{sizeof(other), NPA_PLUGIN_ABI_MAJOR + 1, 0};
    const bool refused = entry(&other) == nullptr;
    add("refuses_other_major", refused,
        refused
            ? absl::StrCat("the entry answers NULL to a shell of ABI major ", NPA_PLUGIN_ABI_MAJOR + 1)
            : absl::StrCat("the entry accepted a shell of ABI major ", NPA_PLUGIN_ABI_MAJOR + 1,
                           "; return NULL when q->abi_major != NPA_PLUGIN_ABI_MAJOR"));
  }
  return out;
}

bool AbiChecksPassed(const std::vector<AbiCheck>& checks) {
  if (checks.empty()) return false;
  for (const AbiCheck& k : checks)
    if (!k.pass) return false;
  return true;
}

std::string AbiChecksJson(const std::string& path, const std::vector<AbiCheck>& checks) {
  nlohmann::json j;
  j["plugin"] = path;
  int passed = 0, failed = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const AbiCheck& k : checks) {
    (k.pass ? passed : failed)++;
    list.push_back({{"name", k.name}, {"result", k.pass ? "pass" : "fail"}, {"detail", k.detail}});
  }
  j["passed"] = passed;
  j["failed"] = failed;
  j["checks"] = std::move(list);
  // The detail may quote bytes of a broken plug-in's name: replace, never throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace npa::conform
