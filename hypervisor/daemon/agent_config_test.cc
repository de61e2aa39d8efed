#include "hypervisor/daemon/agent_config.h"

#include <unistd.h>

#include <fstream>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

std::vector<std::vector<std::string>> Argvs(const std::vector<ConfigArg>& v) {
  std::vector<std::vector<std::string>> out;
  for (const auto& a : v) out.push_back(a.argv);
  return out;
}

TEST(AgentConfigTest, EveryLineFormBecomesFlags) {
  auto r = ParseAgentConfig(
      "# npa-agent\n"
      "control /run/npa/agent.sock\n"
      "  tap = npa0   # the uplink\n"
      "\n"
      "vf 0000:00:05.0,reset=flr\n"
      "vf 0000:00:06.0\n"
      "require-sealed-memory\n"
      "name host#1\n",
      "agent.conf");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Argvs(*r), (std::vector<std::vector<std::string>>{
                           {"--control", "/run/npa/agent.sock"},
                           {"--tap", "npa0"},
                           {"--vf", "0000:00:05.0,reset=flr"},
                           {"--vf", "0000:00:06.0"},
                           {"--require-sealed-memory"},
                           {"--name", "host#1"}}));
  EXPECT_EQ((*r)[1].origin, "agent.conf:3");
  EXPECT_EQ((*r)[5].origin, "agent.conf:8");
}

TEST(AgentConfigTest, BadLinesAreNamedByFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"tap npa0\n--mode sink\n", "a.conf:2: '--mode' is not a setting"},
      {"Mode sink\n", "a.conf:1: 'Mode' is not a setting"},
      {"mode =\n", "a.conf:1: 'mode =' has no value"},
      {"config /etc/other\n", "a.conf:1: 'config' cannot nest"},
  };
  for (const auto& c : cases) {
    auto r = ParseAgentConfig(c.text, "a.conf");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << r.status();
  }
  // A NUL byte (the text reaches the parser whole, not cut at the NUL).
  auto nul = ParseAgentConfig(std::string("tap np\0a0\n", 10), "a.conf");
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.status().message().find("NUL"), std::string::npos) << nul.status();
}

TEST(AgentConfigTest, SizeAndLineCountAreBounded) {
  EXPECT_FALSE(ParseAgentConfig(std::string(kMaxConfigBytes + 1, '#'), "big").ok());
  std::string many;
  for (size_t i = 0; i <= kMaxConfigLines; i++) many += "\n";
  auto r = ParseAgentConfig(many, "many");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than"), std::string::npos);
}

TEST(AgentConfigTest, ReadNamesAMissingFile) {
  auto r = ReadAgentConfig("/nonexistent/npa/agent.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/npa/agent.conf"), std::string::npos);
  char path[] = "/tmp/npa-conf.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "mode sink\n";
  auto ok = ReadAgentConfig(path);
  unlink(path);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(Argvs(*ok), (std::vector<std::vector<std::string>>{{"--mode", "sink"}}));
}

}  // namespace
}  // namespace npa::agent
