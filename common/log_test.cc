#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa {
namespace {

// Captures what the logger writes to stderr while it lives.
class StderrCapture {
 public:
  StderrCapture() {
    char tmpl[] = "/tmp/npa-log-test.XXXXXX";
    fd_ = mkstemp(tmpl);
    path_ = tmpl;
    saved_ = dup(STDERR_FILENO);
    dup2(fd_, STDERR_FILENO);
  }
  ~StderrCapture() {
    Restore();
    close(fd_);
    unlink(path_.c_str());
  }
  void Restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  std::vector<std::string> Lines() {
    Restore();
    std::string all;
    char b[4096];
    ssize_t n;
    lseek(fd_, 0, SEEK_SET);
    while ((n = read(fd_, b, sizeof b)) > 0) all.append(b, n);
    std::vector<std::string> out;
    size_t i = 0;
    for (size_t nl; (nl = all.find('\n', i)) != std::string::npos; i = nl + 1)
      out.push_back(all.substr(i, nl - i));
    EXPECT_EQ(i, all.size()) << "every line ends with a newline";
    return out;
  }

 private:
  int fd_ = -1, saved_ = -1;
  std::string path_;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LogInit("log-test");
    SetLogLevel(LogLevel::kDebug);
  }
  void TearDown() override { SetLogFormat(LogFormat::kText); }
};

TEST_F(LogTest, JsonLinesCarryTheGuestAndVfAsFields) {
  SetLogFormat(LogFormat::kJson);
  StderrCapture cap;
  NPA_LOG(Info, "control: listening on %s", "/run/npa/agent.sock");
  {
    LogScope g("g1");
    NPA_LOG(Info, "control: guest %s: RUNNING", "g1");
    {
      LogScope inner("g2", "0000:03:00.1");
      NPA_LOG(Warn, "control: guest %s: VF offered", "g2");
    }
    NPA_LOG(Debug, "control: guest %s: back in its own scope", "g1");
  }
  NPA_LOG_FOR(Error, (LogFields{"g3", "0000:03:00.2"}), "vf: guest %s: reset failed", "g3");
  NPA_LOG(Info, "after every scope");
  auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 6u);
  std::vector<nlohmann::json> j;
  for (const auto& l : lines) j.push_back(nlohmann::json::parse(l));  // throws: not JSON
  for (const auto& o : j) {
    EXPECT_EQ(o["component"], "log-test");
    EXPECT_EQ(o["pid"], getpid());
    EXPECT_TRUE(o["time"].is_string());
    EXPECT_EQ(o["time"].get<std::string>().back(), 'Z');
    EXPECT_TRUE(o["mono"].is_number());
  }
  EXPECT_EQ(j[0]["level"], "info");
  EXPECT_FALSE(j[0].contains("guest"));
  EXPECT_EQ(j[1]["guest"], "g1");
  EXPECT_FALSE(j[1].contains("vf"));
  EXPECT_EQ(j[2]["guest"], "g2");
  EXPECT_EQ(j[2]["vf"], "0000:03:00.1");
  EXPECT_EQ(j[2]["level"], "warn");
  EXPECT_EQ(j[3]["guest"], "g1") << "the outer scope is back";
  EXPECT_EQ(j[4]["guest"], "g3");
  EXPECT_EQ(j[4]["vf"], "0000:03:00.2");
  EXPECT_EQ(j[4]["message"], "vf: guest g3: reset failed");
  EXPECT_FALSE(j[5].contains("guest"));
}

TEST_F(LogTest, HostileTextStillMakesValidJson) {
  SetLogFormat(LogFormat::kJson);
  StderrCapture cap;
  const std::string evil = "quote\" back\\slash\nnewline\x01\x1b[31m tab\t bad\xff\xc0\xaf utf8 é";
  {
    LogScope g(std::string("g\"\n\xfe") + std::string(100, 'x'), "0000:03:00.1\"");
    NPA_LOG(Info, "msg %s", evil.c_str());
    NPA_LOG(Info, "%s", std::string(5000, 'y').c_str());  // longer than a line
    NPA_LOG(Info, "%s", std::string(400, '"').c_str());   // every byte escaped
  }
  auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) {
    auto o = nlohmann::json::parse(l);
    EXPECT_TRUE(o.contains("guest"));
    EXPECT_EQ(o["vf"], "0000:03:00.1\"");
  }
  auto o = nlohmann::json::parse(lines[0]);
  const std::string m = o["message"];
  EXPECT_NE(m.find("quote\" back\\slash\nnewline\x01"), std::string::npos);
  EXPECT_NE(m.find("bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd utf8 \xc3\xa9"), std::string::npos)
      << "invalid bytes become U+FFFD, valid UTF-8 stays";
  EXPECT_EQ(o["guest"].get<std::string>().substr(0, 5), "g\"\n\xef\xbf");
  EXPECT_LE(o["guest"].get<std::string>().size(), 70u) << "the scope keeps 63 bytes";
  EXPECT_LT(lines[1].size(), 2048u);
}

TEST_F(LogTest, TextFormatIsUnchangedAndFormatsParse) {
  SetLogFormat(LogFormat::kText);
  StderrCapture cap;
  {
    LogScope g("g1");
    NPA_LOG(Warn, "control: guest %s: hello", "g1");
  }
  auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" WARN log-test["), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("]: control: guest g1: hello"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find('{'), std::string::npos);
  LogFormat f = LogFormat::kText;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_TRUE(ParseLogFormat("text", &f));
  EXPECT_EQ(f, LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml", &f));
  EXPECT_EQ(f, LogFormat::kText);
}

TEST_F(LogTest, ThresholdStillApplies) {
  SetLogFormat(LogFormat::kJson);
  SetLogLevel(LogLevel::kWarn);
  StderrCapture cap;
  NPA_LOG(Info, "not shown");
  NPA_LOG_FOR(Debug, (LogFields{"g1", nullptr}), "not shown either");
  NPA_LOG(Error, "shown");
  auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["level"], "error");
}

}  // namespace
}  // namespace npa
