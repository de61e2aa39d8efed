#include "shell/vf/plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "shell/vf/plugin_probe.h"

#ifndef NPA_PLUGIN_DIR
#define NPA_PLUGIN_DIR "/usr/local/lib/npa/plugins"
#endif
// Relative to the directory libnpa_shell.so is loaded from; "" turns the
// lookup beside the library off (an absolute NPA_PLUGIN_INSTALL_DIR).
#ifndef NPA_PLUGIN_RELDIR
#define NPA_PLUGIN_RELDIR "npa/plugins"
#endif

namespace npa::shell {

// The minimum sizes are the 1.0 layouts; pin them so that appending a field
// for 1.1 cannot silently raise what the shell demands of 1.0 plug-ins.
static_assert(kPluginInfoMinSize == offsetof(npa_plugin_info, fast) + sizeof(void*));
static_assert(kCtrlOpsMinSize == offsetof(npa_plugin_ctrl_ops, irq_handler) + sizeof(void*));
static_assert(kFastOpsMinSize == offsetof(npa_plugin_fast_ops, get_irq_vector) + sizeof(void*));
static_assert(sizeof(npa_plugin_info) >= kPluginInfoMinSize);
static_assert(sizeof(npa_plugin_ctrl_ops) >= kCtrlOpsMinSize);
static_assert(sizeof(npa_plugin_fast_ops) >= kFastOpsMinSize);

namespace {

constexpr size_t kMaxVendorLen = 255;
// The version rule's header (struct_size, abi_major, abi_minor) is the only
// part of npa_plugin_info every major shares, so it is read before the size
// of the rest is known.
constexpr uint32_t kInfoHeaderSize = offsetof(npa_plugin_info, name);

struct DlCloser {
  void operator()(void* h) const {
    if (h != nullptr) dlclose(h);
  }
};
using DlHandle = std::unique_ptr<void, DlCloser>;

// A plug-in string, read no further than max+1 bytes so that a missing NUL
// cannot run us off the end of its data.
bool BoundedString(const char* s, size_t max, std::string* out) {
  if (s == nullptr) return false;
  size_t n = strnlen(s, max + 1);
  if (n > max) return false;
  out->assign(s, n);
  return true;
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > kMaxPluginNameLen) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

struct OpName {
  size_t offset;
  const char* name;
};
constexpr std::array kCtrlMandatory = {
    OpName{offsetof(npa_plugin_ctrl_ops, probe), "probe"},
    OpName{offsetof(npa_plugin_ctrl_ops, remove), "remove"},
    OpName{offsetof(npa_plugin_ctrl_ops, get_caps), "get_caps"},
    OpName{offsetof(npa_plugin_ctrl_ops, configure), "configure"},
    OpName{offsetof(npa_plugin_ctrl_ops, start), "start"},
    OpName{offsetof(npa_plugin_ctrl_ops, stop), "stop"},
    OpName{offsetof(npa_plugin_ctrl_ops, queue), "queue"},
    OpName{offsetof(npa_plugin_ctrl_ops, link_status), "link_status"},
    OpName{offsetof(npa_plugin_ctrl_ops, queue_stats), "queue_stats"},
};
constexpr std::array kFastMandatory = {
    OpName{offsetof(npa_plugin_fast_ops, rx_burst), "rx_burst"},
    OpName{offsetof(npa_plugin_fast_ops, tx_burst), "tx_burst"},
};

// Reads a function pointer field of an ops table copy without naming it.
bool OpPresent(const void* table, size_t offset) {
  void (*fn)(void);
  memcpy(&fn, static_cast<const char*>(table) + offset, sizeof(fn));
  return fn != nullptr;
}

// Copy an ops table the SPDK way: zero-filled shell struct, then at most
// min(theirs, ours) bytes, so optional ops beyond their size read as NULL.
template <typename T>
T CopyTable(const T* theirs) {
  T ours{};
  memcpy(&ours, theirs, std::min<size_t>(theirs->struct_size, sizeof(T)));
  ours.struct_size = sizeof(T);
  return ours;
}

}  // namespace

LoadedPlugin::~LoadedPlugin() {
  if (handle_ != nullptr) dlclose(handle_);
}

absl::StatusOr<PluginTables> ValidatePluginInfo(const npa_plugin_info* raw,
                                                const LoadOptions& opts, const std::string& path) {
  const std::string who = absl::StrCat("plug-in ", path);
  auto reject = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(who, ": ", what));
  };
  if (raw == nullptr) {
    return reject(absl::StrFormat(
        "refused this shell's ABI %u.%u (its entry returned NULL); use a plug-in built for "
        "npa/plugin.h ABI %u.x",
        opts.shell_major, opts.shell_minor, opts.shell_major));
  }
  if (raw->struct_size < kInfoHeaderSize) {
    return reject(absl::StrFormat(
        "npa_plugin_info.struct_size %u is too small to hold even the version; set it to "
        "sizeof(npa_plugin_info)",
        raw->struct_size));
  }
  if (raw->abi_major != opts.shell_major) {
    return reject(absl::StrFormat(
        "ABI major %u is not supported by this shell (major %u); rebuild the plug-in against "
        "npa/plugin.h ABI %u.x",
        raw->abi_major, opts.shell_major, opts.shell_major));
  }
  if (raw->struct_size < kPluginInfoMinSize) {
    return reject(absl::StrFormat(
        "npa_plugin_info.struct_size %u is smaller than ABI %u.0's %u bytes; set it to "
        "sizeof(npa_plugin_info)",
        raw->struct_size, opts.shell_major, kPluginInfoMinSize));
  }
  if (raw->abi_minor < opts.required_minor) {
    return reject(absl::StrFormat(
        "ABI %u.%u is older than the %u.%u this shell needs; rebuild the plug-in against a "
        "current npa/plugin.h",
        raw->abi_major, raw->abi_minor, opts.shell_major, opts.required_minor));
  }
  const npa_plugin_info info = CopyTable(raw);

  PluginTables t;
  if (info.name == nullptr || !BoundedString(info.name, kMaxPluginNameLen, &t.name) ||
      !ValidName(t.name)) {
    std::string shown;
    if (info.name != nullptr) {
      // At most the first 32 bytes, escaped: it may be anything.
      shown.assign(info.name, strnlen(info.name, kMaxPluginNameLen + 1));
      shown = absl::StrCat("'", absl::CHexEscape(shown),
                           shown.size() > kMaxPluginNameLen ? "...' is too long" : "' is not valid");
    }
    return reject(absl::StrCat("name ", info.name == nullptr ? "is NULL" : shown,
                               "; use 1 to 31 characters from [a-z0-9_], e.g. \"e1000e\""));
  }
  const std::string named = absl::StrCat("plug-in '", t.name, "' (", path, ")");
  auto reject_named = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(named, ": ", what));
  };
  if (!BoundedString(info.vendor, kMaxVendorLen, &t.vendor)) {
    return reject_named("vendor is NULL or longer than 255 bytes; set it to a short string");
  }
  if (!BoundedString(info.version, kMaxVendorLen, &t.version)) {
    return reject_named("version is NULL or longer than 255 bytes; set it to a short string");
  }

  if (info.id_table == nullptr) {
    return reject_named("id_table is NULL; list the PCI IDs the plug-in drives");
  }
  if (info.id_count < 1 || info.id_count > kMaxIdCount) {
    return reject_named(absl::StrFormat(
        "id_count %u is out of range; it must be 1..%u (the number of id_table entries)",
        info.id_count, kMaxIdCount));
  }
  if (info.id_entry_size < sizeof(npa_pci_id) || info.id_entry_size > kMaxIdEntrySize) {
    return reject_named(absl::StrFormat(
        "id_entry_size %u is out of range (%zu..%u); set it to sizeof(npa_pci_id)",
        info.id_entry_size, sizeof(npa_pci_id), kMaxIdEntrySize));
  }
  t.ids.reserve(info.id_count);
  for (uint32_t i = 0; i < info.id_count; ++i) {
    npa_pci_id id{};
    // The plug-in's stride: a newer minor may append fields to each entry.
    memcpy(&id, reinterpret_cast<const char*>(info.id_table) + size_t{i} * info.id_entry_size,
           sizeof(id));
    if ((id.class_code | id.class_mask) > 0xffffffu) {
      return reject_named(absl::StrFormat(
          "id_table[%u] has class_code 0x%x / class_mask 0x%x beyond 24 bits; use the "
          "base/sub/prog-if class in the low 24 bits",
          i, id.class_code, id.class_mask));
    }
    t.ids.push_back(id);
  }

  if (info.ctrl == nullptr) return reject_named("ctrl is NULL; point it at the control ops table");
  if (info.ctrl->struct_size < kCtrlOpsMinSize) {
    return reject_named(absl::StrFormat(
        "npa_plugin_ctrl_ops.struct_size %u is smaller than ABI 1.0's %u bytes; set it to "
        "sizeof(npa_plugin_ctrl_ops)",
        info.ctrl->struct_size, kCtrlOpsMinSize));
  }
  if (info.fast == nullptr) return reject_named("fast is NULL; point it at the fast-path ops table");
  if (info.fast->struct_size < kFastOpsMinSize) {
    return reject_named(absl::StrFormat(
        "npa_plugin_fast_ops.struct_size %u is smaller than ABI 1.0's %u bytes; set it to "
        "sizeof(npa_plugin_fast_ops)",
        info.fast->struct_size, kFastOpsMinSize));
  }
  t.ctrl = CopyTable(info.ctrl);
  t.fast = CopyTable(info.fast);
  for (const OpName& op : kCtrlMandatory) {
    if (!OpPresent(&t.ctrl, op.offset)) {
      return reject_named(absl::StrCat("mandatory control op '", op.name, "' is NULL; implement it"));
    }
  }
  for (const OpName& op : kFastMandatory) {
    if (!OpPresent(&t.fast, op.offset)) {
      return reject_named(absl::StrCat("mandatory fast-path op '", op.name, "' is NULL; implement it"));
    }
  }

  t.capabilities = info.capabilities & NPA_CAP_ALL_V1;
  t.unknown_capabilities = info.capabilities & ~NPA_CAP_ALL_V1;
  if (t.unknown_capabilities != 0 && opts.log) {
    NPA_LOG(Warn,
            "%s: capability bits 0x%llx are unknown to this shell (ABI %u.%u) and ignored; "
            "fine for a plug-in of a newer minor (it claims %u.%u), otherwise clear them",
            named.c_str(), static_cast<unsigned long long>(t.unknown_capabilities),
            opts.shell_major, opts.shell_minor, info.abi_major, info.abi_minor);
  }
  // ABI 1.1 flags (zero from a 1.0 plug-in: CopyTable zero-fills what its
  // struct_size does not cover). An unknown bit promises something this
  // shell cannot use: dropped, so the shell falls back to what it knows.
  t.flags = info.flags & NPA_PLUGIN_F_ALL_V1_1;
  if ((info.flags & ~NPA_PLUGIN_F_ALL_V1_1) != 0 && opts.log) {
    NPA_LOG(Warn, "%s: flag bits 0x%llx are unknown to this shell (ABI %u.%u) and ignored",
            named.c_str(), static_cast<unsigned long long>(info.flags & ~NPA_PLUGIN_F_ALL_V1_1),
            opts.shell_major, opts.shell_minor);
  }
  t.abi_major = info.abi_major;
  t.abi_minor = info.abi_minor;
  return t;
}

absl::StatusOr<std::unique_ptr<LoadedPlugin>> LoadPlugin(const std::string& path_in,
                                                         const LoadOptions& opts) {
  // dlopen looks a bare name up in the library path; a plug-in path is a file.
  const std::string path = path_in.find('/') == std::string::npos ? "./" + path_in : path_in;
  const std::string who = absl::StrCat("plug-in ", path);
  auto reject = [&](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(who, ": ", what));
  };

  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(who, ": cannot stat: ", strerror(err),
                                     "; check the path and NPA_PLUGIN_PATH"));
  }
  if (!S_ISREG(st.st_mode)) return reject("not a regular file; point at the plug-in's .so");
  // The file and its directory are root's and nobody else can write them,
  // so nobody but root can swap the file between this check and dlopen; the
  // path opened is the resolved one, so a link cannot be re-pointed either.
  // (dlopen through /proc/self/fd/N would close even that window, but glibc
  // takes a reused fd number for an object it already loaded.)
  NPA_ASSIGN_OR_RETURN(const std::string real, TrustedPluginPath(path));

  DlHandle handle(dlopen(real.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* e = dlerror();
    return reject(absl::StrCat("cannot load: ", e ? e : "unknown dlopen error",
                               "; check it is a shared object for this machine and that its "
                               "dependencies are installed"));
  }
  dlerror();
  void* sym = dlsym(handle.get(), NPA_PLUGIN_ENTRY_NAME);
  if (sym == nullptr) {
    return reject("does not export " NPA_PLUGIN_ENTRY_NAME
                  "; define it with NPA_PLUGIN_EXPORT (and build with the C linkage of "
                  "npa/plugin.h)");
  }
  auto entry = reinterpret_cast<npa_plugin_entry_fn>(sym);

  npa_plugin_query q{};
  q.struct_size = sizeof(q);
  q.abi_major = opts.shell_major;
  q.abi_minor = opts.shell_minor;
  NPA_ASSIGN_OR_RETURN(PluginTables t, ValidatePluginInfo(entry(&q), opts, path));

  auto plugin = std::unique_ptr<LoadedPlugin>(new LoadedPlugin());
  plugin->name_ = std::move(t.name);
  plugin->vendor_ = std::move(t.vendor);
  plugin->version_ = std::move(t.version);
  plugin->ids_ = std::move(t.ids);
  plugin->ctrl_ = t.ctrl;
  plugin->fast_ = t.fast;
  plugin->capabilities_ = t.capabilities;
  plugin->unknown_capabilities_ = t.unknown_capabilities;
  plugin->flags_ = t.flags;
  plugin->path_ = path;
  plugin->abi_major_ = t.abi_major;
  plugin->abi_minor_ = t.abi_minor;
  plugin->handle_ = handle.release();
  if (opts.log)
    NPA_LOG(Debug,
            "plug-in '%s' (%s): loaded, vendor '%s' version '%s', ABI %u.%u, %zu ID entries, "
            "TX completions %s",
            plugin->name_.c_str(), path.c_str(), plugin->vendor_.c_str(),
            plugin->version_.c_str(), plugin->abi_major_, plugin->abi_minor_,
            plugin->ids_.size(),
            (plugin->flags_ & NPA_PLUGIN_F_TX_FREE) ? "counted (buf_free_tx)" : "marked per frame");
  return plugin;
}


// ---------------------------------------------------------------------------
// Matching

int IdEntryScore(const npa_pci_id& e, const PciIdentity& id) {
  auto field = [](uint16_t want, uint16_t have, int weight, int* score) {
    if (want == NPA_PCI_ANY_ID) return true;
    if (want != have) return false;
    *score += weight;
    return true;
  };
  // Weights: each outweighs every lower one together (class bits <= 24 < 1<<17).
  int score = 0;
  if (!field(e.vendor, id.vendor, 1 << 20, &score)) return -1;
  if (!field(e.device, id.device, 1 << 19, &score)) return -1;
  if (!field(e.subsystem_vendor, id.subsystem_vendor, 1 << 18, &score)) return -1;
  if (!field(e.subsystem_device, id.subsystem_device, 1 << 17, &score)) return -1;
  const uint32_t mask = e.class_mask & 0xffffffu;
  if ((e.class_code & mask) != (id.class_code & mask)) return -1;
  return score + __builtin_popcount(mask);
}

namespace {
int BestScore(const std::vector<npa_pci_id>& ids, const PciIdentity& id) {
  int best = -1;
  for (const npa_pci_id& e : ids) best = std::max(best, IdEntryScore(e, id));
  return best;
}
}  // namespace

int MatchScore(const LoadedPlugin& plugin, const PciIdentity& id) {
  return BestScore(plugin.ids(), id);
}

bool Matches(const LoadedPlugin& plugin, const PciIdentity& id) {
  return MatchScore(plugin, id) >= 0;
}

// ---------------------------------------------------------------------------
// Discovery

std::string PluginDirBeside(absl::string_view object_path, absl::string_view reldir,
                            absl::string_view fallback) {
  // A relative name (a main program started by a relative path) says
  // nothing reliable about where the tree is.
  const size_t slash = object_path.rfind('/');
  if (reldir.empty() || object_path.empty() || object_path[0] != '/' ||
      slash == absl::string_view::npos) {
    return std::string(fallback);
  }
  std::string dir = absl::StrCat(object_path.substr(0, slash + 1), reldir);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::string(fallback);
  return dir;
}

const std::string& InstalledPluginDir() {
  // dladdr on this very function names the object the loader ran: the
  // installed libnpa_shell.so.1 (a package's /usr/lib, a --prefix tree,
  // a DESTDIR root), or the program that links the loader statically. The
  // plug-ins install beside the library (NPA_PLUGIN_INSTALL_DIR relative to
  // the libdir), so the shell finds them wherever the tree was put. Every
  // candidate still passes the file-trust check before it is read.
  static const std::string dir = [] {
    Dl_info info{};
    const char* object = nullptr;
    if (dladdr(reinterpret_cast<void*>(&PluginDirBeside), &info) != 0) object = info.dli_fname;
    return PluginDirBeside(object != nullptr ? object : "", NPA_PLUGIN_RELDIR, NPA_PLUGIN_DIR);
  }();
  return dir;
}

std::vector<std::string> PluginSearchDirs(const char* npa_plugin_path) {
  std::vector<std::string> dirs;
  if (npa_plugin_path != nullptr) {
    // An empty entry does not mean "." here: loading code from the working
    // directory by accident is how plug-in hijacks happen.
    for (absl::string_view d : absl::StrSplit(npa_plugin_path, ':', absl::SkipEmpty())) {
      dirs.emplace_back(d);
    }
  }
  dirs.emplace_back(InstalledPluginDir());
  return dirs;
}

std::vector<std::string> PluginSearchDirs() { return PluginSearchDirs(getenv("NPA_PLUGIN_PATH")); }

namespace {

std::vector<std::string> SharedObjectsIn(const std::string& dir, std::string* error) {
  std::vector<std::string> files;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    *error = strerror(errno);
    return files;
  }
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".so") == 0) files.push_back(dir + "/" + n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

std::string Describe(const PciIdentity& id) {
  return absl::StrFormat("PCI %04x:%04x subsystem %04x:%04x class %06x", id.vendor, id.device,
                         id.subsystem_vendor, id.subsystem_device, id.class_code);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedPlugin>> FindPluginFor(const PciIdentity& id,
                                                            const std::vector<std::string>& dirs,
                                                            const LoadOptions& opts) {
  std::string best_path;
  int best_score = -1;
  std::vector<std::string> seen_names;
  std::vector<std::string> tried;
  for (const std::string& dir : dirs) {
    std::string error;
    std::vector<std::string> files = SharedObjectsIn(dir, &error);
    if (!error.empty()) {
      tried.push_back(absl::StrCat(dir, "/ (", error, ")"));
      continue;
    }
    if (files.empty()) tried.push_back(absl::StrCat(dir, "/ (no *.so)"));
    for (const std::string& f : files) {
      // Trust first (no code of an untrusted file runs, not even in a
      // child), then the tables in a child.
      absl::Status trust = CheckPluginFileTrust(f);
      absl::StatusOr<PluginTables> p =
          trust.ok() ? ProbePluginInChild(f, opts) : absl::StatusOr<PluginTables>(trust);
      if (!p.ok()) {
        NPA_LOG(Warn, "skipping %s", std::string(p.status().message()).c_str());
        tried.push_back(absl::StrCat(f, " (rejected: ", p.status().message(), ")"));
        continue;
      }
      const std::string& name = p->name;
      if (std::find(seen_names.begin(), seen_names.end(), name) != seen_names.end()) {
        NPA_LOG(Info, "plug-in '%s' at %s is shadowed by one earlier in the search path",
                name.c_str(), f.c_str());
        tried.push_back(absl::StrCat(f, " ('", name, "' shadowed by an earlier directory)"));
        continue;
      }
      seen_names.push_back(name);
      int score = BestScore(p->ids, id);
      if (score < 0) {
        tried.push_back(absl::StrCat(f, " ('", name, "': no ID entry matches)"));
        continue;
      }
      tried.push_back(absl::StrCat(f, " ('", name, "': matches, score ", score, ")"));
      if (score > best_score) {
        best_score = score;
        best_path = f;
      }
    }
  }
  if (best_score < 0) {
    return absl::NotFoundError(absl::StrCat(
        "no plug-in drives ", Describe(id), "; tried: ",
        tried.empty() ? std::string("nothing (no directories)") : absl::StrJoin(tried, "; "),
        ". Install a plug-in for this device in ", InstalledPluginDir(),
        " or add its directory to NPA_PLUGIN_PATH"));
  }
  // The winner's tables were read safely; now it comes into this process.
  // A file changed since (it was checked and is root's) fails here, loudly.
  NPA_ASSIGN_OR_RETURN(std::unique_ptr<LoadedPlugin> best, LoadPlugin(best_path, opts));
  if (BestScore(best->ids(), id) != best_score)
    return absl::FailedPreconditionError(absl::StrCat(
        "plug-in ", best_path, ": its ID table changed between the probe and the load"));
  NPA_LOG(Info, "plug-in '%s' (%s) drives %s", best->name().c_str(), best->path().c_str(),
          Describe(id).c_str());
  return best;
}

}  // namespace npa::shell

