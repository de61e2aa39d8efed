#include "shell/vf/plugin_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "shell/vf/plugin_test_util.h"

namespace npa::shell {
namespace {

std::string Rejection(const std::string& path, const LoadOptions& opts = {}) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(path, opts);
  if (p.ok()) return "(accepted)";
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition) << p.status();
  EXPECT_FALSE(StillLoaded(path)) << path << " was not dlclosed after rejection";
  return std::string(p.status().message());
}

// ---------------------------------------------------------------------------
// Load-time checks: each broken plug-in has exactly one defect.

// A plug-in built against ABI 1.0 (npa_plugin_info of 72 bytes, minor 0)
// still loads; the 1.1 flags it cannot have read as 0, so the shell marks
// its TX frames one by one and counts their bytes itself.
TEST(LoadPluginTest, AcceptsAbi10PluginWithoutTheFlags) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(Plugin("stuck_v10", "test_stuck_v10"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->abi_minor(), 0);
  EXPECT_EQ((*p)->flags(), 0u);
  // Its control table is ABI 1.0's 128 bytes: no rss_set.
  EXPECT_EQ((*p)->ctrl().rss_set, nullptr);
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> q = LoadPlugin(Plugin("stuck", "test_stuck"));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->flags(), NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES | NPA_PLUGIN_F_RX_BYTES);
}

TEST(LoadPluginTest, AcceptsGoodPluginAndCopiesTablesByValue) {
  const std::string path = Plugin("good", "test_good");
  {
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(path);
    ASSERT_TRUE(p.ok()) << p.status();
    const LoadedPlugin& lp = **p;
    EXPECT_EQ(lp.name(), "test_good");
    EXPECT_EQ(lp.vendor(), "npa tests");
    EXPECT_EQ(lp.version(), "1.0");
    EXPECT_EQ(lp.abi_major(), 1);
    EXPECT_EQ(lp.abi_minor(), NPA_PLUGIN_ABI_MINOR);
    EXPECT_EQ(lp.flags(), NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES | NPA_PLUGIN_F_RX_BYTES);
    EXPECT_EQ(lp.capabilities(), NPA_CAP_RX_CSUM | NPA_CAP_RSS);
    EXPECT_EQ(lp.unknown_capabilities(), 0u);
    ASSERT_EQ(lp.ids().size(), 1u);
    EXPECT_EQ(lp.ids()[0].vendor, 0x1d0f);
    EXPECT_EQ(lp.ids()[0].device, 0x100f);
    EXPECT_EQ(lp.ctrl().struct_size, sizeof(npa_plugin_ctrl_ops));
    EXPECT_NE(lp.ctrl().quiesce, nullptr);
    EXPECT_EQ(lp.ctrl().reset, nullptr);  // optional and absent: unsupported
    EXPECT_NE(lp.ctrl().rss_set, nullptr);  // ABI 1.1
    EXPECT_NE(lp.fast().tx_reap, nullptr);
    EXPECT_EQ(lp.fast().get_irq_vector, nullptr);
    EXPECT_TRUE(StillLoaded(path));
  }
  EXPECT_FALSE(StillLoaded(path)) << "LoadedPlugin's destructor must dlclose";
}

TEST(LoadPluginTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(Dir("good") + "/libnope.so");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(p.status().message(), "plug-in " + Dir("good") +
                                      "/libnope.so: cannot stat: No such file or directory; "
                                      "check the path and NPA_PLUGIN_PATH");
}

TEST(LoadPluginTest, RejectsFileThatIsNotASharedObject) {
  char tmpl[] = "/tmp/npa_loader_test_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/libjunk.so";
  std::ofstream(path) << "not an ELF file\n";
  std::string msg = Rejection(path);
  EXPECT_EQ(msg.rfind("plug-in " + path + ": cannot load: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("; check it is a shared object for this machine"), std::string::npos) << msg;
  unlink(path.c_str());
  rmdir(tmpl);
}

TEST(LoadPluginTest, RejectsMissingEntrySymbol) {
  const std::string p = Plugin("broken", "broken_no_entry");
  EXPECT_EQ(Rejection(p), "plug-in " + p +
                              ": does not export npa_plugin_entry; define it with "
                              "NPA_PLUGIN_EXPORT (and build with the C linkage of npa/plugin.h)");
}

TEST(LoadPluginTest, RejectsEntryReturningNull) {
  const std::string p = Plugin("broken", "broken_entry_null");
  EXPECT_EQ(Rejection(p), "plug-in " + p +
                              ": refused this shell's ABI 1." + std::to_string(NPA_PLUGIN_ABI_MINOR) +
                              " (its entry returned NULL); use a "
                              "plug-in built for npa/plugin.h ABI 1.x");
}

TEST(LoadPluginTest, RejectsWrongMajor) {
  const std::string p = Plugin("broken", "broken_major");
  EXPECT_EQ(Rejection(p), "plug-in " + p +
                              ": ABI major 2 is not supported by this shell (major 1); rebuild "
                              "the plug-in against npa/plugin.h ABI 1.x");
}

TEST(LoadPluginTest, RejectsMinorOlderThanRequired) {
  // A 1.0 plug-in against a shell that requires 1.1.
  const std::string p = Plugin("stuck_v10", "test_stuck_v10");
  LoadOptions opts;
  opts.shell_minor = 1;
  opts.required_minor = 1;
  EXPECT_EQ(Rejection(p, opts), "plug-in " + p +
                                    ": ABI 1.0 is older than the 1.1 this shell needs; rebuild "
                                    "the plug-in against a current npa/plugin.h");
  // And a shell of a newer minor still takes a 1.0 plug-in when 1.0 suffices.
  opts.required_minor = 0;
  EXPECT_TRUE(LoadPlugin(p, opts).ok());
}

TEST(LoadPluginTest, RejectsShortInfo) {
  const std::string p = Plugin("broken", "broken_info_size");
  EXPECT_EQ(Rejection(p), "plug-in " + p +
                              ": npa_plugin_info.struct_size 40 is smaller than ABI 1.0's 72 "
                              "bytes; set it to sizeof(npa_plugin_info)");
}

TEST(LoadPluginTest, RejectsShortCtrlOps) {
  const std::string p = Plugin("broken", "broken_ctrl_size");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_ctrl_size' (" + p +
                              "): npa_plugin_ctrl_ops.struct_size 64 is smaller than ABI 1.0's "
                              "128 bytes; set it to sizeof(npa_plugin_ctrl_ops)");
}

TEST(LoadPluginTest, RejectsShortFastOps) {
  const std::string p = Plugin("broken", "broken_fast_size");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_fast_size' (" + p +
                              "): npa_plugin_fast_ops.struct_size 16 is smaller than ABI 1.0's "
                              "48 bytes; set it to sizeof(npa_plugin_fast_ops)");
}

TEST(LoadPluginTest, RejectsNullMandatoryOps) {
  std::string p = Plugin("broken", "broken_null_start");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_null_start' (" + p +
                              "): mandatory control op 'start' is NULL; implement it");
  p = Plugin("broken", "broken_null_tx");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_null_tx' (" + p +
                              "): mandatory fast-path op 'tx_burst' is NULL; implement it");
}

TEST(LoadPluginTest, RejectsBadIdTables) {
  std::string p = Plugin("broken", "broken_null_ids");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_null_ids' (" + p +
                              "): id_table is NULL; list the PCI IDs the plug-in drives");
  p = Plugin("broken", "broken_zero_ids");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_zero_ids' (" + p +
                              "): id_count 0 is out of range; it must be 1..1024 (the number "
                              "of id_table entries)");
  p = Plugin("broken", "broken_id_entry_size");
  EXPECT_EQ(Rejection(p), "plug-in 'broken_id_entry_size' (" + p +
                              "): id_entry_size 8 is out of range (16..256); set it to "
                              "sizeof(npa_pci_id)");
}

TEST(LoadPluginTest, RejectsBadName) {
  const std::string p = Plugin("broken", "broken_name");
  EXPECT_EQ(Rejection(p), "plug-in " + p +
                              ": name 'Bad-Name' is not valid; use 1 to 31 characters from "
                              "[a-z0-9_], e.g. \"e1000e\"");
  const std::string l = Plugin("broken", "broken_long_name");
  EXPECT_EQ(Rejection(l), "plug-in " + l +
                              ": name 'a_name_that_is_far_too_long_for_...' is too long; use 1 to "
                              "31 characters from [a-z0-9_], e.g. \"e1000e\"");
}

TEST(LoadPluginTest, AcceptsUnknownCapabilitiesAndKeepsThemApart) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p =
      LoadPlugin(Plugin("broken", "unknown_caps"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->capabilities(), NPA_CAP_TX_CSUM);
  EXPECT_EQ((*p)->unknown_capabilities(), (1ull << 40) | (1ull << 41));
}

// ---------------------------------------------------------------------------
// ID matching

constexpr PciIdentity k82574{0x8086, 0x10d3, 0x8086, 0xa01f, 0x020000};

TEST(MatchTest, EntryScoreWildcardsAndClass) {
  const uint16_t any = NPA_PCI_ANY_ID;
  EXPECT_LT(IdEntryScore({0x8086, 0x10d4, any, any, 0, 0}, k82574), 0);
  EXPECT_LT(IdEntryScore({0x8086, 0x10d3, 0x8086, 0xa020, 0, 0}, k82574), 0);
  EXPECT_LT(IdEntryScore({any, any, any, any, 0x010800, 0xffff00}, k82574), 0);
  const int all_any = IdEntryScore({any, any, any, any, 0, 0}, k82574);
  const int cls = IdEntryScore({any, any, any, any, 0x020000, 0xffff00}, k82574);
  const int vendor = IdEntryScore({0x8086, any, any, any, 0, 0}, k82574);
  const int device = IdEntryScore({0x8086, 0x10d3, any, any, 0, 0}, k82574);
  const int subvendor = IdEntryScore({0x8086, any, 0x8086, 0xa01f, 0x020000, 0xffffff}, k82574);
  const int exact = IdEntryScore({0x8086, 0x10d3, 0x8086, 0xa01f, 0, 0}, k82574);
  EXPECT_EQ(all_any, 0);
  EXPECT_EQ(cls, 16);  // bits compared
  EXPECT_GT(vendor, cls);
  // An exact device outweighs exact subsystem ids plus the whole class.
  EXPECT_GT(device, subvendor);
  EXPECT_GT(subvendor, vendor);
  EXPECT_GT(exact, device);
}

TEST(MatchTest, PluginsOrderedBySpecificity) {
  auto load = [](const char* n) { return std::move(LoadPlugin(Plugin("match", n)).value()); };
  auto exact = load("match_exact"), device = load("match_device");
  auto vendor = load("match_vendor"), cls = load("match_class");
  EXPECT_GT(MatchScore(*exact, k82574), MatchScore(*device, k82574));
  EXPECT_GT(MatchScore(*device, k82574), MatchScore(*vendor, k82574));
  EXPECT_GT(MatchScore(*vendor, k82574), MatchScore(*cls, k82574));
  EXPECT_GE(MatchScore(*cls, k82574), 0);
  // match_vendor's table has a 24-byte stride: its second entry (8086) is only
  // found if the loader walks the table with the plug-in's id_entry_size.
  ASSERT_EQ(vendor->ids().size(), 2u);
  EXPECT_EQ(vendor->ids()[1].vendor, 0x8086);
  EXPECT_EQ(vendor->ids()[1].device, NPA_PCI_ANY_ID);
  EXPECT_TRUE(Matches(*vendor, k82574));
  // Second entry of a multi-entry table.
  EXPECT_TRUE(Matches(*exact, {0x1af4, 0x1041, 0x1af4, 0x1100, 0x020000}));
  EXPECT_FALSE(Matches(*exact, {0x8086, 0x10d3, 0x1028, 0x0001, 0x020000}));
  EXPECT_FALSE(Matches(*cls, {0x144d, 0xa808, 0x144d, 0xa801, 0x010802}));
}

// ---------------------------------------------------------------------------
// Discovery

TEST(FindPluginTest, PicksMostSpecificAndSkipsBroken) {
  const std::vector<std::string> dirs = {Dir("match")};
  auto name_for = [&](const PciIdentity& id) {
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = FindPluginFor(id, dirs);
    return p.ok() ? (*p)->name() : std::string(p.status().message());
  };
  EXPECT_EQ(name_for(k82574), "match_exact");
  EXPECT_EQ(name_for({0x8086, 0x10d3, 0x1028, 0x0001, 0x020000}), "match_device");
  EXPECT_EQ(name_for({0x8086, 0x1533, 0x8086, 0x0001, 0x020000}), "match_vendor");
  EXPECT_EQ(name_for({0x14e4, 0x1657, 0x14e4, 0x0001, 0x020000}), "match_class");
}

TEST(FindPluginTest, NotFoundListsWhatWasTried) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p =
      FindPluginFor({0x144d, 0xa808, 0x144d, 0xa801, 0x010802}, {Dir("match"), Dir("nonexistent")});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  const std::string msg(p.status().message());
  EXPECT_EQ(msg.rfind("no plug-in drives PCI 144d:a808 subsystem 144d:a801 class 010802; tried: ",
                      0),
            0u)
      << msg;
  EXPECT_NE(msg.find(Plugin("match", "match_broken") + " (rejected: plug-in " +
                     Plugin("match", "match_broken") + ": ABI major 2 is not supported"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(Plugin("match", "match_exact") + " ('match_exact': no ID entry matches)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(Dir("nonexistent") + "/ (No such file or directory)"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("or add its directory to NPA_PLUGIN_PATH"), std::string::npos) << msg;
}

TEST(FindPluginTest, SearchDirsFromPathThenInstallDir) {
  EXPECT_EQ(PluginSearchDirs(nullptr), std::vector<std::string>{InstalledPluginDir()});
  EXPECT_EQ(PluginSearchDirs("/a::/b:"),
            (std::vector<std::string>{"/a", "/b", InstalledPluginDir()}));
  ASSERT_EQ(setenv("NPA_PLUGIN_PATH", "/x:/y", 1), 0);
  EXPECT_EQ(PluginSearchDirs(), (std::vector<std::string>{"/x", "/y", InstalledPluginDir()}));
  unsetenv("NPA_PLUGIN_PATH");
}

// The installed directory is found beside the library, so a tree installed
// with --prefix, DESTDIR or a package finds its own plug-ins.
TEST(FindPluginTest, PluginDirBesideTheLoadedObject) {
  char tmpl[] = "/tmp/npa-plugdir.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  const std::string lib = root + "/usr/lib/libnpa_shell.so.1";
  EXPECT_EQ(PluginDirBeside(lib, "npa/plugins", "/fallback"), "/fallback") << "no such directory yet";
  ASSERT_EQ(system(("mkdir -p " + root + "/usr/lib/npa/plugins").c_str()), 0);
  EXPECT_EQ(PluginDirBeside(lib, "npa/plugins", "/fallback"), root + "/usr/lib/npa/plugins");
  EXPECT_EQ(PluginDirBeside(lib, "", "/fallback"), "/fallback") << "an empty reldir turns it off";
  EXPECT_EQ(PluginDirBeside("libnpa_shell.so.1", "npa/plugins", "/fallback"), "/fallback")
      << "a relative object name is not trusted";
  EXPECT_EQ(PluginDirBeside("", "npa/plugins", "/fallback"), "/fallback");
  // A file of that name is not a directory.
  ASSERT_EQ(system(("mkdir -p " + root + "/opt/lib/npa && touch " + root + "/opt/lib/npa/plugins").c_str()), 0);
  EXPECT_EQ(PluginDirBeside(root + "/opt/lib/x.so", "npa/plugins", "/fallback"), "/fallback");
  ASSERT_EQ(system(("rm -rf " + root).c_str()), 0);
  // This test links the loader statically: its own directory has no
  // npa/plugins, so the compiled-in directory is the answer.
  EXPECT_EQ(InstalledPluginDir(), NPA_PLUGIN_DIR_FOR_TEST);
}

TEST(FindPluginTest, EarlierDirectoryOnPathWins) {
  const PciIdentity id{0x1234, 0x5678, 0, 0, 0x020000};
  for (const auto& [path, want] : {std::pair{Dir("dup1") + ":" + Dir("dup2"), "dup1"},
                                   std::pair{Dir("dup2") + ":" + Dir("dup1"), "dup2"}}) {
    ASSERT_EQ(setenv("NPA_PLUGIN_PATH", path.c_str(), 1), 0);
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = FindPluginFor(id, PluginSearchDirs());
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->name(), "test_dup");
    EXPECT_EQ((*p)->version(), want) << "NPA_PLUGIN_PATH=" << path;
  }
  unsetenv("NPA_PLUGIN_PATH");
}

}  // namespace
}  // namespace npa::shell
