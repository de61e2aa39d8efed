// shell/vf/plugin_loader.h — loading, checking, matching and finding vendor
// plug-ins (ABI: include/npa/plugin.h; reference: docs/plugin-abi.md).
//
//   PciIdentity id{0x8086, 0x10d3, 0x8086, 0xa01f, 0x020000};
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<LoadedPlugin> p,
//                        FindPluginFor(id, PluginSearchDirs()));
//   PluginDevice dev(std::move(p));   // shell/vf/plugin_device.h
//   NPA_RETURN_IF_ERROR(dev.Probe(&services, device_info));
//   NPA_ASSIGN_OR_RETURN(npa_dev_caps caps, dev.GetCaps());
//   NPA_RETURN_IF_ERROR(dev.Configure(cfg));
//   NPA_RETURN_IF_ERROR(dev.Start());
//   NPA_ASSIGN_OR_RETURN(uint16_t n, dev.RxBurst(0, bufs, 32));
//   ...
//   NPA_RETURN_IF_ERROR(dev.Stop());
//   NPA_RETURN_IF_ERROR(dev.Remove());
//
// LoadPlugin() checks everything the plug-in hands back before it is accepted
// (version, struct sizes, name, ID table, mandatory ops) and copies the ops
// tables by value, so the plug-in cannot change them afterwards and a NULL
// optional op reads as "unsupported". Every rejection names what is wrong and
// what to do about it. Calls into the plug-in go through PluginDevice
// (shell/vf/plugin_device.h), never through ctrl()/fast() directly.
//
// Trust (issue 9): only root-owned files that nobody else can write, in
// root-owned directories that nobody else can write, are loaded
// (CheckPluginFileTrust, shell/vf/plugin_probe.h; a symbolic link is
// followed and its target's file and directory checked); discovery reads each candidate's tables in a
// child process first, so a candidate that crashes, hangs or lies while
// its tables are read is skipped with a message instead of taking the
// application down.
//
// Threading: LoadPlugin/FindPluginFor may be called from any thread. Loading
// runs the object's constructors, so only directories the operator controls
// belong on the search path. FindPluginFor forks; the child only loads the
// candidate, writes to a pipe and _exits.
#ifndef NPA_SHELL_VF_PLUGIN_LOADER_H_
#define NPA_SHELL_VF_PLUGIN_LOADER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "npa/plugin.h"

namespace npa::shell {

// What the shell knows about a PCI function when it looks for a plug-in.
struct PciIdentity {
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint16_t subsystem_vendor = 0;
  uint16_t subsystem_device = 0;
  uint32_t class_code = 0;  // 24-bit base/sub/prog-if
};

// The ABI 1.0 sizes: the least a plug-in built against any 1.x header hands
// back. Fields added by later minors lie beyond these and read as zero/NULL
// when a plug-in's struct_size does not cover them.
inline constexpr uint32_t kPluginInfoMinSize = 72;
inline constexpr uint32_t kCtrlOpsMinSize = 128;
inline constexpr uint32_t kFastOpsMinSize = 48;
inline constexpr uint32_t kMaxIdCount = 1024;
// An ID entry larger than this is taken for garbage, not for a future layout.
inline constexpr uint32_t kMaxIdEntrySize = 256;
inline constexpr size_t kMaxPluginNameLen = 31;

struct LoadOptions {
  // The version this shell announces in npa_plugin_query.
  uint16_t shell_major = NPA_PLUGIN_ABI_MAJOR;
  uint16_t shell_minor = NPA_PLUGIN_ABI_MINOR;
  // The oldest plug-in minor accepted. Tests raise it to exercise the
  // "minor too old" rejection, which ABI 1.0 cannot produce by itself.
  uint16_t required_minor = NPA_PLUGIN_ABI_MINOR_REQUIRED;
  // FindPluginFor: how long a candidate's tables may take to read in the
  // child process before the child is killed and the candidate skipped.
  uint32_t probe_timeout_ms = 2000;
  // Log warnings and the "loaded" line (off in the probing child, which must
  // not take the parent's locks).
  bool log = true;
};

// What a plug-in's npa_plugin_info says, checked: the tables the shell keeps.
struct PluginTables {
  std::string name, vendor, version;
  uint16_t abi_major = 0, abi_minor = 0;
  uint64_t capabilities = 0, unknown_capabilities = 0;
  uint64_t flags = 0;  // NPA_PLUGIN_F_* this shell knows (0 from a 1.0 plug-in)
  std::vector<npa_pci_id> ids;
  npa_plugin_ctrl_ops ctrl{};
  npa_plugin_fast_ops fast{};
};

// The pure check of what an entry point returned: version, struct sizes,
// name, vendor and version strings, the ID table, the ops tables and their
// mandatory ops. raw may be NULL (the entry refused the shell). Reads only
// through raw's pointers and never further than the sizes it claims, within
// the bounds above (kMaxIdCount entries of at most kMaxIdEntrySize bytes,
// strings of at most 255 bytes). path names the plug-in in errors. No
// dlopen, no I/O: fuzzed by tests/fuzz/plugin_table_fuzz.cc.
absl::StatusOr<PluginTables> ValidatePluginInfo(const npa_plugin_info* raw,
                                                const LoadOptions& opts, const std::string& path);

// An accepted plug-in: the shared object stays loaded (dlclose in the
// destructor) and everything the shell needs is copied out of it.
class LoadedPlugin {
 public:
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;
  ~LoadedPlugin();

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  const std::string& vendor() const { return vendor_; }
  const std::string& version() const { return version_; }
  uint16_t abi_major() const { return abi_major_; }
  uint16_t abi_minor() const { return abi_minor_; }
  // NPA_CAP_* bits this shell knows; unknown ones are logged and kept apart.
  uint64_t capabilities() const { return capabilities_; }
  uint64_t unknown_capabilities() const { return unknown_capabilities_; }
  // NPA_PLUGIN_F_* (ABI 1.1) this shell knows; unknown ones are logged and dropped.
  uint64_t flags() const { return flags_; }
  // The ID table, re-laid out as this shell's npa_pci_id.
  const std::vector<npa_pci_id>& ids() const { return ids_; }
  // Shell-side copies; struct_size is this shell's sizeof.
  const npa_plugin_ctrl_ops& ctrl() const { return ctrl_; }
  const npa_plugin_fast_ops& fast() const { return fast_; }

 private:
  friend absl::StatusOr<std::unique_ptr<LoadedPlugin>> LoadPlugin(const std::string&,
                                                                 const LoadOptions&);
  LoadedPlugin() = default;

  void* handle_ = nullptr;
  std::string path_, name_, vendor_, version_;
  uint16_t abi_major_ = 0, abi_minor_ = 0;
  uint64_t capabilities_ = 0, unknown_capabilities_ = 0;
  uint64_t flags_ = 0;
  std::vector<npa_pci_id> ids_;
  npa_plugin_ctrl_ops ctrl_{};
  npa_plugin_fast_ops fast_{};
};

// Check the file (TrustedPluginPath), dlopen the resolved path that was
// checked with RTLD_NOW|RTLD_LOCAL (no link to re-point in between), call
// npa_plugin_entry and check the answer (ValidatePluginInfo). A path without
// '/' is taken relative to the working directory, never looked up in the
// library search path. Errors: NOT_FOUND when the file does not exist,
// FAILED_PRECONDITION for every rejection (fix the plug-in, do not retry).
// On error the object is dlclosed again. This runs the object's code in the
// calling process: FindPluginFor reads candidates in a child first.
absl::StatusOr<std::unique_ptr<LoadedPlugin>> LoadPlugin(const std::string& path,
                                                         const LoadOptions& opts = {});

// How specifically one ID entry matches id: -1 when it does not match, else a
// score where an exact vendor outweighs an exact device, which outweighs exact
// subsystem ids, with the number of class bits compared as the tie-breaker.
int IdEntryScore(const npa_pci_id& entry, const PciIdentity& id);
// The best entry's score over the plug-in's table, -1 when none matches.
int MatchScore(const LoadedPlugin& plugin, const PciIdentity& id);
bool Matches(const LoadedPlugin& plugin, const PciIdentity& id);

// The directories searched for plug-ins, in order: each non-empty entry of
// npa_plugin_path (the NPA_PLUGIN_PATH syntax, colon-separated), then the
// installed plug-in directory. The no-argument form reads NPA_PLUGIN_PATH.
std::vector<std::string> PluginSearchDirs(const char* npa_plugin_path);
std::vector<std::string> PluginSearchDirs();
// The installed plug-in directory: NPA_PLUGIN_RELDIR beside the object this
// code was loaded from (libnpa_shell.so, found with dladdr) when that
// directory exists, so an installed tree or package is relocatable; otherwise
// the directory compiled in (NPA_PLUGIN_DIR). Computed once per process.
const std::string& InstalledPluginDir();
// The rule InstalledPluginDir applies, on its inputs: "<dirname of
// object_path>/<reldir>" when object_path is absolute, reldir is non-empty
// and that directory exists; else fallback.
std::string PluginDirBeside(absl::string_view object_path, absl::string_view reldir,
                            absl::string_view fallback);

// Read every *.so in dirs (sorted by file name within a directory), skip the
// broken ones with a logged reason, and return the plug-in whose ID table
// matches id most specifically. Ties go to the earlier directory; a plug-in
// whose name was already found in an earlier directory is shadowed. NOT_FOUND
// lists every file tried and why it was not taken.
//
// One broken candidate cannot take the shell down: each candidate that
// passes CheckPluginFileTrust is loaded and validated in a forked child
// (ProbePluginInChild, shell/vf/plugin_probe.h) that sends back its name and
// ID table over a pipe; a child that crashes, hangs past
// opts.probe_timeout_ms (then SIGKILL) or sends garbage costs only that
// candidate. Only the chosen plug-in is then loaded into this process.
absl::StatusOr<std::unique_ptr<LoadedPlugin>> FindPluginFor(const PciIdentity& id,
                                                            const std::vector<std::string>& dirs,
                                                            const LoadOptions& opts = {});

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_PLUGIN_LOADER_H_
