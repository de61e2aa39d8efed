// agent_options_test.cc — npa-agent's command line (agent_options.h): the
// defaults, --help/--version, every kind of refusal with the message an
// operator sees, and a --config file under the command line.
#include "hypervisor/daemon/agent_options.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

absl::StatusOr<AgentArgs> Parse(std::vector<std::string> args, AgentOptions* o) {
  return ParseAgentArgs(args, o);
}

// The refusal's message, or "(accepted)".
std::string Refusal(std::vector<std::string> args) {
  AgentOptions o;
  absl::StatusOr<AgentArgs> r = Parse(std::move(args), &o);
  if (r.ok()) return "(accepted)";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  return std::string(r.status().message());
}

TEST(AgentOptionsTest, DefaultsPutTheRosterBesideTheControlSocket) {
  AgentOptions o;
  ASSERT_EQ(*Parse({}, &o), AgentArgs::kRun);
  EXPECT_FALSE(o.control_given);
  EXPECT_EQ(o.control.control_path, kDefaultControlPath);
  EXPECT_EQ(o.control.restart_roster_path, std::string(kDefaultControlPath) + ".guests");
  EXPECT_TRUE(o.tap.empty());
  EXPECT_FALSE(o.tls_configured());
  EXPECT_FALSE(o.log_level.has_value());

  AgentOptions c;
  ASSERT_EQ(*Parse({"--control", "/tmp/a.sock", "--restart-roster", "none"}, &c), AgentArgs::kRun);
  EXPECT_TRUE(c.control_given);
  EXPECT_EQ(c.control.control_path, "/tmp/a.sock");
  EXPECT_EQ(c.control.restart_roster_path, "") << "none: no roster";
  AgentOptions r;
  ASSERT_EQ(*Parse({"--control", "/tmp/a.sock"}, &r), AgentArgs::kRun);
  EXPECT_EQ(r.control.restart_roster_path, "/tmp/a.sock.guests");
}

TEST(AgentOptionsTest, HelpAndVersionStopTheParse) {
  AgentOptions o;
  EXPECT_EQ(*Parse({"--help"}, &o), AgentArgs::kHelp);
  EXPECT_EQ(*Parse({"-h", "--bogus"}, &o), AgentArgs::kHelp);
  EXPECT_EQ(*Parse({"--version"}, &o), AgentArgs::kVersion);
  EXPECT_NE(std::string(kAgentUsage).find("EXIT STATUS"), std::string::npos);
}

TEST(AgentOptionsTest, ValuesAreTakenAndRangesChecked) {
  AgentOptions o;
  ASSERT_EQ(*Parse({"--burst", "64", "--cpu", "1", "--mtu", "9000", "--mode", "sink", "--tap", "npa0",
                    "--tap-persist", "--rarp-schedule", "10,20,40", "--log-level", "debug",
                    "--vhost-user", "/tmp/v1", "--vhost-user", "/tmp/v2", "--max-guests", "7"},
                   &o),
            AgentArgs::kRun);
  EXPECT_EQ(o.dataplane.burst, 64);
  EXPECT_EQ(o.dataplane.cpu, 1);
  EXPECT_EQ(o.dataplane.mode, DataplaneMode::kSink);
  EXPECT_EQ(o.control.mtu, 9000u);
  EXPECT_EQ(o.tap, "npa0");
  EXPECT_TRUE(o.tap_persist);
  EXPECT_EQ(o.control.rarp_gaps_ms, (std::vector<uint32_t>{10, 20, 40}));
  ASSERT_TRUE(o.log_level.has_value());
  EXPECT_EQ(*o.log_level, LogLevel::kDebug);
  EXPECT_EQ(o.control.vhost_user_paths.size(), 2u);
  EXPECT_EQ(o.control.max_guests, 7u);

  EXPECT_EQ(Refusal({"--burst", "0"}), "--burst needs a number in 1..256: 0");
  EXPECT_EQ(Refusal({"--burst", "12x"}), "--burst needs a number in 1..256: 12x");
  EXPECT_EQ(Refusal({"--mtu", "67"}), "--mtu needs a number in 68..9000: 67");
  EXPECT_EQ(Refusal({"--burst"}), "--burst needs a number in 1..256") << "no value at the end";
  EXPECT_EQ(Refusal({"--mode", "hub"}), "unknown --mode (want switch, sink or loopback): hub");
  EXPECT_EQ(Refusal({"--frobnicate"}), "unknown argument: --frobnicate");
  EXPECT_EQ(Refusal({"--log-level", "loud"}),
            "unknown --log-level (want error, warn, info or debug): loud");
  EXPECT_NE(Refusal({"--rarp-schedule", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}).find("up to 16"),
            std::string::npos);
  EXPECT_NE(Refusal({"--rarp-schedule", "5,0"}).find("1..10000"), std::string::npos);
  EXPECT_NE(Refusal({"--vf", "not-a-bdf"}), "(accepted)");
  EXPECT_NE(Refusal({"--metrics-listen", "9100"}), "(accepted)") << "a bare port";
}

TEST(AgentOptionsTest, SettingsThatGoTogether) {
  EXPECT_EQ(Refusal({"--tap-persist"}), "--tap-persist needs --tap NAME");
  EXPECT_EQ(Refusal({"--tls-cert", "a.pem"}),
            "--tls-cert, --tls-key and --tls-ca go together (all three or none)");
  EXPECT_EQ(Refusal({"--migration-listen", "0.0.0.0:7000"}),
            "--migration-listen needs --tls-cert, --tls-key and --tls-ca");
  EXPECT_EQ(Refusal({"--migration-listen", "7000"}), "--migration-listen needs HOST:PORT: 7000");
  AgentOptions o;
  ASSERT_EQ(*Parse({"--tls-cert", "a.pem", "--tls-key", "a.key", "--tls-ca", "ca.pem",
                    "--migration-listen", "127.0.0.1:7000"},
                   &o),
            AgentArgs::kRun);
  EXPECT_TRUE(o.tls_configured());
  EXPECT_EQ(o.tls.ca_file, "ca.pem");
  EXPECT_EQ(o.migration_listen, "127.0.0.1:7000");
}

// A --config file's settings come first, so the command line overrides
// them; a bad one is named by its file and line.
TEST(AgentOptionsTest, ConfigFileUnderTheCommandLine) {
  char path[] = "/tmp/npa-agent-options-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path);
    f << "# test\nmtu 1400\nburst = 16\ntap npa9\n";
  }
  AgentOptions o;
  ASSERT_EQ(*Parse({"--burst", "8", "--config", path}, &o), AgentArgs::kRun);
  EXPECT_EQ(o.control.mtu, 1400u);
  EXPECT_EQ(o.dataplane.burst, 8) << "the command line wins";
  EXPECT_EQ(o.tap, "npa9");
  {
    std::ofstream f(path);
    f << "mtu 1400\n\nburst 999\n";
  }
  EXPECT_EQ(Refusal({"--config", path}), std::string(path) + ":3: --burst needs a number in 1..256: 999");
  {
    std::ofstream f(path);
    f << "mtu 1400\n";
  }
  EXPECT_EQ(Refusal({"--burst", "999", "--config", path}), "--burst needs a number in 1..256: 999")
      << "the command line's own error names no file";
  EXPECT_EQ(Refusal({"--config"}), "--config needs a file");
  unlink(path);
  EXPECT_NE(Refusal({"--config", path}), "(accepted)") << "a missing file";
}

}  // namespace
}  // namespace npa::agent
