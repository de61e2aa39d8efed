// npa-conform --abi-only's checks (abi_checks.h) on the loader's test
// plug-ins (tests/plugins: a good one, one per defect, hostile ones) and on
// the faults the loader cannot see (tests/conform/lax_plugin.c). We run as
// root, so the build tree's files pass the trust check; the untrusted case
// makes a group-writable copy in a private temporary directory and removes it.
#include "conform/abi_checks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace npa::conform {
namespace {

std::string Plugin(const std::string& group, const std::string& name) {
  return std::string(NPA_TEST_PLUGIN_ROOT) + "/" + group + "/lib" + name + ".so";
}
std::string Lax(const std::string& name) { return std::string(NPA_LAX_PLUGIN_DIR) + "/lib" + name + ".so"; }

const AbiCheck* Find(const std::vector<AbiCheck>& v, const std::string& name) {
  for (const AbiCheck& k : v)
    if (k.name == name) return &k;
  return nullptr;
}

std::string Names(const std::vector<AbiCheck>& v) {
  std::string s;
  for (const AbiCheck& k : v) s += k.name + (k.pass ? "=PASS " : "=FAIL ");
  return s;
}

shell::LoadOptions Quick() {
  shell::LoadOptions o;
  o.probe_timeout_ms = 1000;
  return o;
}

TEST(AbiChecksTest, AGoodPluginPassesEveryCheckInOrder) {
  std::vector<AbiCheck> v = RunAbiChecks(Plugin("good", "test_good"), Quick());
  ASSERT_EQ(v.size(), 7u) << Names(v);
  const char* order[] = {"file_trust",   "child_load", "loader_accepts",     "abi_version",
                         "entry_points", "id_table",   "refuses_other_major"};
  for (size_t i = 0; i < v.size(); i++) {
    EXPECT_EQ(v[i].name, order[i]);
    EXPECT_TRUE(v[i].pass) << v[i].name << ": " << v[i].detail;
  }
  EXPECT_TRUE(AbiChecksPassed(v));
  EXPECT_NE(v[3].detail.find("ABI 1."), std::string::npos) << v[3].detail;
  EXPECT_NE(v[4].detail.find("ctrl 9/9 mandatory"), std::string::npos) << v[4].detail;
  EXPECT_NE(v[4].detail.find("fast 2/2 mandatory"), std::string::npos) << v[4].detail;
  EXPECT_NE(v[5].detail.find("1 entry: 1d0f:"), std::string::npos) << v[5].detail;
}

TEST(AbiChecksTest, ALoaderRefusalFailsTheChildLoadAndStops) {
  struct {
    const char* name;
    const char* says;
  } cases[] = {
      {"broken_null_tx", "mandatory fast-path op 'tx_burst' is NULL"},
      {"broken_major", "ABI major 2"},
      {"broken_ctrl_size", "npa_plugin_ctrl_ops.struct_size 64"},
      {"broken_no_entry", "does not export npa_plugin_entry"},
      {"broken_zero_ids", "id_count 0"},
  };
  for (const auto& c : cases) {
    std::vector<AbiCheck> v = RunAbiChecks(Plugin("broken", c.name), Quick());
    ASSERT_EQ(v.size(), 2u) << c.name << ": " << Names(v);
    EXPECT_TRUE(v[0].pass) << c.name;
    EXPECT_EQ(v[1].name, "child_load");
    EXPECT_FALSE(v[1].pass) << c.name;
    EXPECT_NE(v[1].detail.find(c.says), std::string::npos) << c.name << ": " << v[1].detail;
    EXPECT_FALSE(AbiChecksPassed(v));
  }
}

TEST(AbiChecksTest, APluginThatCrashesWhileLoadingIsAFailNotACrash) {
  std::vector<AbiCheck> v = RunAbiChecks(Plugin("hostile", "hostile_crash"), Quick());
  ASSERT_EQ(v.size(), 2u) << Names(v);
  EXPECT_FALSE(v[1].pass);
  EXPECT_NE(v[1].detail.find("crashed with signal 11"), std::string::npos) << v[1].detail;
  v = RunAbiChecks(Plugin("hostile", "hostile_hang"), Quick());
  ASSERT_EQ(v.size(), 2u) << Names(v);
  EXPECT_FALSE(v[1].pass);
}

TEST(AbiChecksTest, AnUntrustedFileFailsTheTrustGate) {
  char tmpl[] = "/tmp/npa-abi-checks.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string copy = dir + "/libtest_good.so";
  std::filesystem::copy_file(Plugin("good", "test_good"), copy);
  ASSERT_EQ(chmod(copy.c_str(), 0664), 0);  // group-writable
  std::vector<AbiCheck> v = RunAbiChecks(copy, Quick());
  std::filesystem::remove_all(dir);
  ASSERT_EQ(v.size(), 1u) << Names(v);
  EXPECT_EQ(v[0].name, "file_trust");
  EXPECT_FALSE(v[0].pass);
  EXPECT_NE(v[0].detail.find("writable"), std::string::npos) << v[0].detail;

  v = RunAbiChecks(dir + "/missing.so", Quick());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_FALSE(v[0].pass);
}

TEST(AbiChecksTest, FaultsTheLoaderAcceptsAreFailedByName) {
  std::vector<AbiCheck> ok = RunAbiChecks(Lax("lax_ok"), Quick());
  EXPECT_TRUE(AbiChecksPassed(ok)) << Names(ok);

  std::vector<AbiCheck> v = RunAbiChecks(Lax("lax_any_major"), Quick());
  ASSERT_EQ(v.size(), 7u) << Names(v);
  const AbiCheck* k = Find(v, "refuses_other_major");
  ASSERT_NE(k, nullptr);
  EXPECT_FALSE(k->pass);
  EXPECT_NE(k->detail.find("accepted a shell of ABI major 2"), std::string::npos) << k->detail;
  EXPECT_TRUE(Find(v, "loader_accepts")->pass);
  EXPECT_FALSE(AbiChecksPassed(v));

  v = RunAbiChecks(Lax("lax_wildcard"), Quick());
  k = Find(v, "id_table");
  ASSERT_NE(k, nullptr) << Names(v);
  EXPECT_FALSE(k->pass);
  EXPECT_NE(k->detail.find("id_table[1]"), std::string::npos) << k->detail;
  EXPECT_TRUE(Find(v, "refuses_other_major")->pass);
}

TEST(AbiChecksTest, TheJsonFormCarriesEveryCheck) {
  std::vector<AbiCheck> v = RunAbiChecks(Lax("lax_any_major"), Quick());
  nlohmann::json j = nlohmann::json::parse(AbiChecksJson("p.so", v));
  EXPECT_EQ(j["plugin"], "p.so");
  EXPECT_EQ(j["passed"], 6);
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["checks"].size(), 7u);
  EXPECT_EQ(j["checks"][6]["name"], "refuses_other_major");
  EXPECT_EQ(j["checks"][6]["result"], "fail");
  EXPECT_EQ(j["checks"][0]["result"], "pass");
  EXPECT_FALSE(AbiChecksPassed({}));
}

}  // namespace
}  // namespace npa::conform
