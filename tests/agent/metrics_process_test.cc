// The real npa-agent with --metrics-listen on a free loopback port: a real
// shell guest (libnpa_shell) sends a known number of frames of a known size,
// the agent runs in --mode sink (every frame it takes is counted, none goes
// anywhere), and /metrics, fetched over a plain TCP socket, must report
// exactly those packets and bytes for that guest and queue. Also: a bad
// --metrics-listen is a usage error naming it, and a taken port makes the
// agent exit 1 naming the address. Every wait is bounded; the agent is
// stopped with SIGTERM (SIGKILL if it hangs) and its directory removed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "npa/shell.h"
#include "tests/support/http_get.h"

namespace {

constexpr uint32_t kFrames = 1000;
constexpr uint32_t kLen = 200;

// A loopback port nobody listens on now (the kernel's pick, released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

using npa::testing::HttpGet;

// The value of one sample line "name{labels} value", or -1 if absent.
double Sample(const std::string& text, const std::string& series) {
  const size_t p = text.find("\n" + series + " ");
  if (p == std::string::npos) return -1;
  return std::strtod(text.c_str() + p + 1 + series.size() + 1, nullptr);
}

class Agent {
 public:
  explicit Agent(std::vector<std::string> extra) {
    char tmpl[] = "/tmp/npa-metrics-test.XXXXXX";
    if (mkdtemp(tmpl)) dir_ = tmpl;
    ctl_ = dir_ + "/agent.sock";
    std::vector<std::string> args = {NPA_AGENT_BIN, "--control", ctl_, "--restart-roster", "none",
                                     "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Agent() {
    if (pid_ > 0) Stop();
    const std::string cmd = "rm -rf " + dir_;
    (void)!system(cmd.c_str());
  }
  // Exit status once it exited by itself within ms, else -1 (still running).
  int WaitExit(int ms) {
    int st = 0;
    for (int i = 0; i < ms / 10; i++) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      usleep(10000);
    }
    return -1;
  }
  int Stop() {
    kill(pid_, SIGTERM);
    int rc = WaitExit(5000);
    if (rc < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    return rc;
  }
  const std::string& ctl() const { return ctl_; }

 private:
  std::string dir_, ctl_;
  pid_t pid_ = -1;
};

TEST(MetricsProcessTest, ScrapedGuestCountersMatchTheFramesSent) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  // The address comes from the configuration file, as the packaged unit
  // would give it (agent_config.h); the mode from the command line.
  char conf[] = "/tmp/npa-metrics-conf.XXXXXX";
  const int cfd = mkstemp(conf);
  ASSERT_GE(cfd, 0);
  const std::string text = "metrics-listen = 127.0.0.1:" + std::to_string(port) + "\n";
  ASSERT_EQ(write(cfd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(cfd);
  Agent agent({"--config", conf, "--mode", "sink"});
  // The endpoint is up once the agent is (READY comes after every listener).
  std::string body;
  for (int i = 0; i < 500 && body.find("npa_dataplane_loops_total") == std::string::npos; i++) {
    body = HttpGet(port, "/metrics");
    if (body.empty()) usleep(10000);
  }
  ASSERT_NE(body.find(" 200 "), std::string::npos) << body;

  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = agent.ctl().c_str();
  oa.name = "metrics0";
  npa_shell* sh = nullptr;
  ASSERT_EQ(npa_shell_open(&oa, &sh), 0) << npa_shell_last_error(nullptr);
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  ASSERT_EQ(npa_shell_configure(sh, &qc), 0) << npa_shell_last_error(sh);
  ASSERT_EQ(npa_shell_start(sh), 0) << npa_shell_last_error(sh);

  // Exactly kFrames frames of kLen bytes; what tx_burst did not take is
  // freed and offered again (bounded: 10 s).
  uint32_t sent = 0;
  const uint64_t deadline = npa::MonotonicMs() + 10000;
  while (sent < kFrames && npa::MonotonicMs() < deadline) {
    npa_buf* b[32];
    const uint16_t want = static_cast<uint16_t>(std::min<uint32_t>(32, kFrames - sent));
    const uint16_t n = npa_buf_alloc(sh, 0, b, want);
    for (uint16_t i = 0; i < n; i++) {
      auto* f = static_cast<uint8_t*>(npa_buf_data(b[i]));
      memset(f, 0xff, 6);  // broadcast: the sink takes it all the same
      memset(f + 6, 0x02, 6);
      f[12] = 0x88;
      f[13] = 0xb5;
      memset(f + 14, static_cast<int>(sent + i), kLen - 14);
      b[i]->data_len = kLen;
      b[i]->pkt_len = kLen;
    }
    const uint16_t s = n ? npa_tx_burst(sh, 0, b, n) : 0;
    if (s < n) npa_buf_free(sh, 0, b + s, n - s);
    sent += s;
    if (s == 0) usleep(1000);
  }
  ASSERT_EQ(sent, kFrames);

  // The agent counts what it took from the guest's ring; the scrape reads
  // those counters (cached up to 200 ms), so wait for them, bounded.
  const std::string pk = "npa_guest_tx_packets_total{guest=\"metrics0\",queue=\"0\"}";
  const std::string by = "npa_guest_tx_bytes_total{guest=\"metrics0\",queue=\"0\"}";
  for (int i = 0; i < 100; i++) {
    body = HttpGet(port, "/metrics");
    if (Sample(body, pk) == kFrames) break;
    usleep(50000);
  }
  EXPECT_EQ(Sample(body, pk), kFrames) << body;
  EXPECT_EQ(Sample(body, by), double{kFrames} * kLen) << body;
  EXPECT_EQ(Sample(body, "npa_guest_tx_dropped_total{guest=\"metrics0\",queue=\"0\"}"), 0) << body;
  // Nothing goes back to a guest in sink mode.
  EXPECT_EQ(Sample(body, "npa_guest_rx_packets_total{guest=\"metrics0\",queue=\"0\"}"), 0) << body;
  // The dataplane's own count of what the sink consumed agrees.
  EXPECT_EQ(Sample(body, "npa_dataplane_sink_packets_total"), kFrames) << body;
  EXPECT_EQ(Sample(body, "npa_dataplane_sink_bytes_total"), double{kFrames} * kLen) << body;
  EXPECT_NE(body.find("# TYPE npa_revoke_duration_seconds histogram"), std::string::npos) << body;

  npa_shell_close(sh);
  EXPECT_EQ(agent.Stop(), 0);
  EXPECT_EQ(HttpGet(port, "/metrics"), "");  // the server went with the agent
  unlink(conf);
}

TEST(MetricsProcessTest, BadAddressIsAUsageErrorAndATakenPortExitsOne) {
  for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:99999"}) {
    Agent a({"--metrics-listen", bad});
    EXPECT_EQ(a.WaitExit(5000), 2) << bad;
  }
  // A port already listened on: the agent names it and exits 1.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  Agent busy({"--metrics-listen", "127.0.0.1:" + std::to_string(ntohs(sa.sin_port))});
  EXPECT_EQ(busy.WaitExit(10000), 1);
  close(fd);
}

}  // namespace
