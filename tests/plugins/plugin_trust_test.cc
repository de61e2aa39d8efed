// The plug-in loader trusts nothing it does not own (issue 9, part 3):
// discovery survives candidates that crash, hang, exit or lie while their
// tables are read (read in a child), and only root-owned files that nobody
// else can write, in directories nobody else can write, are loaded. The
// hostile candidates are tests/plugins/hostile.c; the good one is test_good.
// We run as root: the tests make their own root-owned and world-writable
// copies in a private temporary directory and remove it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "shell/vf/plugin_loader.h"
#include "shell/vf/plugin_probe.h"

namespace npa::shell {
namespace {

const PciIdentity kLoopback{0x1d0f, 0x100f, 0x1d0f, 0x0001, 0x020000};

std::string Dir(const std::string& group) { return std::string(NPA_TEST_PLUGIN_ROOT) + "/" + group; }
std::string Plugin(const std::string& group, const std::string& name) {
  return Dir(group) + "/lib" + name + ".so";
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(PluginTrustTest, DiscoverySkipsCandidatesThatCrashHangExitOrLie) {
  LoadOptions o;
  o.probe_timeout_ms = 500;
  const uint64_t t0 = MonotonicMs();
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = FindPluginFor(kLoopback, {Dir("hostile")}, o);
  const uint64_t took = MonotonicMs() - t0;
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "test_good");  // libzz_good.so: test_good.c
  EXPECT_LT(took, 5000u) << "one hang costs one timeout, not more";
}

TEST(PluginTrustTest, EachSkippedCandidateIsNamedWithItsReason) {
  LoadOptions o;
  o.probe_timeout_ms = 300;
  auto reason = [&](const std::string& name) {
    absl::StatusOr<PluginTables> t = ProbePluginInChild(Plugin("hostile", name), o);
    EXPECT_FALSE(t.ok()) << name;
    return t.ok() ? std::string("(accepted)") : std::string(t.status().message());
  };
  std::string m = reason("hostile_crash");
  EXPECT_TRUE(Contains(m, Plugin("hostile", "hostile_crash"))) << m;
  EXPECT_TRUE(Contains(m, "crashed with signal 11")) << m;
  m = reason("hostile_lie");
  EXPECT_TRUE(Contains(m, "crashed with signal 11")) << m;
  m = reason("hostile_ctor");
  EXPECT_TRUE(Contains(m, "crashed with signal 6")) << m;
  m = reason("hostile_exit");
  EXPECT_TRUE(Contains(m, "exited with status 3")) << m;
  m = reason("hostile_hang");
  EXPECT_TRUE(Contains(m, "longer than 300 ms")) << m;
  // A good one comes back with its tables.
  absl::StatusOr<PluginTables> good = ProbePluginInChild(Plugin("hostile", "zz_good"), o);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->name, "test_good");
  ASSERT_EQ(good->ids.size(), 1u);
  EXPECT_EQ(good->ids[0].vendor, 0x1d0f);
  // A validation failure in the child comes back as the loader's own error.
  absl::StatusOr<PluginTables> major = ProbePluginInChild(Plugin("broken", "broken_major"), o);
  ASSERT_FALSE(major.ok());
  EXPECT_EQ(major.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(std::string(major.status().message()), "ABI major 2 is not supported"))
      << major.status();
}

// A private directory with a copy of test_good, removed at the end.
class TrustDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the trust tests make root-owned files: run them as root";
    char tmpl[] = "/tmp/npa-trust-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/libcopy.so";
    std::ifstream in(Plugin("good", "test_good"), std::ios::binary);
    std::ofstream out(file_, std::ios::binary);
    out << in.rdbuf();
    out.close();
    ASSERT_TRUE(out.good());
    ASSERT_EQ(chmod(file_.c_str(), 0755), 0);
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }
  void TearDown() override {
    unlink(file_.c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_, file_;
};

TEST_F(TrustDirTest, RootOwnedNotWritableByOthersIsLoaded) {
  EXPECT_TRUE(CheckPluginFileTrust(file_).ok());
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(file_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "test_good");
}

TEST_F(TrustDirTest, WorldOrGroupWritableFileIsRefused) {
  for (mode_t m : {0757, 0775}) {
    ASSERT_EQ(chmod(file_.c_str(), m), 0);
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(file_);
    ASSERT_FALSE(p.ok());
    const std::string msg(p.status().message());
    EXPECT_TRUE(Contains(msg, file_)) << msg;
    EXPECT_TRUE(Contains(msg, m == 0757 ? "world-writable" : "group-writable")) << msg;
    // Discovery refuses it without running it, and says why.
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> f = FindPluginFor(kLoopback, {dir_});
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(Contains(std::string(f.status().message()), "-writable")) << f.status();
  }
}

TEST_F(TrustDirTest, FileNotOwnedByRootIsRefused) {
  ASSERT_EQ(chown(file_.c_str(), 65534, 65534), 0);
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(file_);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(Contains(std::string(p.status().message()), "owned by uid 65534, not root"))
      << p.status();
}

TEST_F(TrustDirTest, WritableOrForeignDirectoryIsRefused) {
  ASSERT_EQ(chmod(dir_.c_str(), 0777), 0);
  absl::Status s = CheckPluginFileTrust(file_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(std::string(s.message()), "its directory " + dir_ + " is world-writable"))
      << s;
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(chown(dir_.c_str(), 65534, 65534), 0);
  s = CheckPluginFileTrust(file_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(std::string(s.message()), "owned by uid 65534")) << s;
  ASSERT_EQ(chown(dir_.c_str(), 0, 0), 0);
  EXPECT_TRUE(CheckPluginFileTrust(file_).ok());
}

// A symbolic link is followed: the target's file and directory are checked
// (and the link's directory too). Before, only the link's directory was
// looked at, so a trusted link to a file in an open directory was loaded.
class TrustLinkTest : public TrustDirTest {
 protected:
  void SetUp() override {
    TrustDirTest::SetUp();
    char tmpl[] = "/tmp/npa-trust-target-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    other_ = tmpl;
    ASSERT_EQ(chmod(other_.c_str(), 0755), 0);
    target_ = other_ + "/libtarget.so";
    ASSERT_EQ(rename(file_.c_str(), target_.c_str()), 0);
    ASSERT_EQ(symlink(target_.c_str(), file_.c_str()), 0);  // dir_/libcopy.so -> other_/...
  }
  void TearDown() override {
    unlink(file_.c_str());
    unlink(target_.c_str());
    rmdir(other_.c_str());
    TrustDirTest::TearDown();
  }
  std::string other_, target_;
};

TEST_F(TrustLinkTest, TrustedLinkToTrustedTargetIsLoadedFromTheTarget) {
  absl::StatusOr<std::string> real = TrustedPluginPath(file_);
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(*real, target_);
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(file_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "test_good");
  EXPECT_EQ((*p)->path(), file_) << "named as the operator named it";
}

TEST_F(TrustLinkTest, TargetDirectoryWritableByOthersIsRefused) {
  for (mode_t m : {0777, 0775}) {
    ASSERT_EQ(chmod(other_.c_str(), m), 0);
    absl::Status s = CheckPluginFileTrust(file_);
    ASSERT_FALSE(s.ok()) << "mode " << m;
    const std::string msg(s.message());
    EXPECT_TRUE(Contains(msg, "its directory " + other_ + " is " +
                                  (m == 0777 ? "world" : "group") + "-writable"))
        << msg;
    EXPECT_FALSE(LoadPlugin(file_).ok());
    // Discovery lists the link and refuses it without running it.
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> f = FindPluginFor(kLoopback, {dir_});
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(Contains(std::string(f.status().message()), other_)) << f.status();
  }
  ASSERT_EQ(chmod(other_.c_str(), 0755), 0);
  ASSERT_EQ(chown(other_.c_str(), 65534, 65534), 0);
  absl::Status s = CheckPluginFileTrust(file_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(std::string(s.message()), "its directory " + other_ + " is owned by uid 65534"))
      << s;
  ASSERT_EQ(chown(other_.c_str(), 0, 0), 0);
  EXPECT_TRUE(CheckPluginFileTrust(file_).ok());
}

TEST_F(TrustLinkTest, TargetFileWritableByOthersIsRefused) {
  ASSERT_EQ(chmod(target_.c_str(), 0757), 0);
  absl::Status s = CheckPluginFileTrust(file_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(std::string(s.message()), "world-writable")) << s;
}

TEST_F(TrustLinkTest, LinkInADirectoryWritableByOthersIsRefused) {
  // The target is fine; the link's directory is open, so anyone could
  // re-point the link.
  ASSERT_EQ(chmod(dir_.c_str(), 0777), 0);
  absl::Status s = CheckPluginFileTrust(file_);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(std::string(s.message()),
                       "the directory of its link " + dir_ + " is world-writable"))
      << s;
}

}  // namespace
}  // namespace npa::shell
