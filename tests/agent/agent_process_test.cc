// Starts the real npa-agent, attaches guests through its sockets and checks
// what npactl reports. Every wait is bounded; the agent is stopped with
// SIGTERM (and SIGKILL if it hangs) and must leave no socket behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/control_codec.h"
#include "common/unix_socket.h"
#include "npa/shell.h"

namespace npa {
namespace {

struct CmdResult {
  int rc;
  std::string out;
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Python's json module judges the output and evaluates check against it.
bool JsonCheck(const std::string& json, const std::string& check) {
  char path[] = "/tmp/npa-agent-json.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return false;
  bool ok = write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  close(fd);
  std::string cmd = std::string("python3 -c 'import json,sys; d=json.load(open(\"") + path +
                    "\")); sys.exit(0 if (" + check + ") else 1)'";
  ok = ok && system(cmd.c_str()) == 0;
  unlink(path);
  return ok;
}

class AgentProcess {
 public:
  // env: NAME=VALUE set in the agent's environment; "WATCHDOG_PID=self"
  // becomes the agent's own pid (what systemd sets).
  explicit AgentProcess(std::vector<std::string> extra, std::vector<std::string> env = {}) {
    char tmpl[] = "/tmp/npa-agent-test.XXXXXX";
    if (mkdtemp(tmpl)) dir_ = tmpl;
    ctl_ = dir_ + "/agent.sock";
    vu_ = dir_ + "/vhost.sock";
    std::vector<std::string> args = {NPA_AGENT_BIN, "--control", ctl_, "--vhost-user", vu_,
                                     "--name", "agent-under-test", "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      for (std::string& e : env) {
        if (e == "WATCHDOG_PID=self") e = "WATCHDOG_PID=" + std::to_string(getpid());
        putenv(e.data());
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~AgentProcess() {
    if (pid_ > 0) Stop();
    std::string cmd = "rm -rf " + dir_;
    (void)!system(cmd.c_str());
  }
  // SIGTERM, then wait up to 5 s (SIGKILL after). Returns the exit status.
  int Stop() {
    kill(pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 500; i++) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      usleep(10000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return -1;
  }
  CmdResult Npactl(const std::string& args) {
    return Sh(std::string(NPACTL_BIN) + " --socket " + ctl_ + ".admin " + args);
  }
  const std::string& ctl() const { return ctl_; }
  const std::string& vu() const { return vu_; }

 private:
  std::string dir_, ctl_, vu_;
  pid_t pid_ = -1;
};

control::Envelope Hello(const std::string& name) {
  control::Envelope e;
  e.mutable_hello()->set_name(name);
  e.mutable_hello()->set_queue_pairs(1);
  e.mutable_hello()->set_pid(getpid());
  return e;
}

TEST(AgentProcessTest, GuestAttachesAndNpactlListsIt) {
  AgentProcess agent({"--mode", "switch"});
  auto s = ConnectUnix(agent.ctl(), 5000);
  ASSERT_TRUE(s.ok()) << s.status();
  ControlChannel ch(std::move(*s));
  ASSERT_TRUE(ch.Send(Hello("shell0")).ok());
  auto w = ch.ReceiveBlocking(5000);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->env.has_welcome()) << BodyName(w->env);
  ASSERT_EQ(w->fds.size(), 1u);  // the shell's end of its vhost-user connection
  EXPECT_EQ(w->env.welcome().agent_name(), "agent-under-test");

  // A plain vhost-user front end on the other socket becomes a guest too.
  auto vu = ConnectUnix(agent.vu(), 5000);
  ASSERT_TRUE(vu.ok()) << vu.status();

  CmdResult r;
  for (int i = 0; i < 100; i++) {
    r = agent.Npactl("--json guests");
    if (r.rc == 0 && JsonCheck(r.out, "len(d[\"guests\"]) == 2")) break;
    usleep(20000);
  }
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(JsonCheck(r.out,
                        "[g[\"transport\"] for g in d[\"guests\"]] == [\"control\", "
                        "\"vhost-user-socket\"] and d[\"guests\"][0][\"name\"] == \"shell0\" and "
                        "d[\"guests\"][0][\"state\"] == \"NEGOTIATING\""))
      << r.out;
  r = agent.Npactl("guests");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("shell0"), std::string::npos) << r.out;
  r = agent.Npactl("--json stats shell0");
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(JsonCheck(r.out, "d[\"guests\"][0][\"name\"] == \"shell0\"")) << r.out;
  r = agent.Npactl("--json agent");
  EXPECT_EQ(r.rc, 0);
  EXPECT_TRUE(JsonCheck(r.out, "d[\"agent\"] == \"agent-under-test\" and d[\"uplink\"] is None"))
      << r.out;
  EXPECT_EQ(agent.Npactl("stats nosuch").rc, 1);
  EXPECT_EQ(agent.Npactl("frobnicate").rc, 2);
  EXPECT_EQ(Sh(std::string(NPACTL_BIN) + " --socket /nonexistent/agent.sock guests 2>/dev/null").rc, 3);

  // Clean shutdown: guests get Bye, exit 0, sockets removed.
  EXPECT_EQ(agent.Stop(), 0);
  bool bye = false;
  for (int i = 0; i < 3 && !bye; i++) {
    auto f = ch.ReceiveBlocking(2000);
    if (!f.ok()) break;
    bye = f->env.has_bye();
  }
  EXPECT_TRUE(bye);
  EXPECT_NE(access(agent.ctl().c_str(), F_OK), 0);
  EXPECT_NE(access(agent.vu().c_str(), F_OK), 0);
}

TEST(AgentProcessTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) + " --mode bogus 2>/dev/null").rc, 2);
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) + " --burst 0 2>/dev/null").rc, 2);
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) + " --idle-spins 10000001 2>/dev/null").rc, 2);
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) + " --idle-spins -1 2>/dev/null").rc, 2);
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) + " --frob 2>/dev/null").rc, 2);
  CmdResult h = Sh(std::string(NPA_AGENT_BIN) + " --help");
  EXPECT_EQ(h.rc, 0);
  EXPECT_NE(h.out.find("EXIT STATUS"), std::string::npos);
}

// The packaged service's view: settings from --config FILE (a flag on the
// command line overrides the file), READY=1 with STATUS once the sockets
// exist, watchdog pings, STOPPING=1 on SIGTERM, all on a NOTIFY_SOCKET
// this test binds as systemd would.
TEST(AgentProcessTest, ConfigFileAndServiceManagerNotifications) {
  char tmpl[] = "/tmp/npa-svc-test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string notify = dir + "/notify", conf = dir + "/agent.conf";
  int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(nfd, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify.c_str());
  ASSERT_EQ(bind(nfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  FILE* f = fopen(conf.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("# test\nmode sink\nname = from-the-file\n", f);
  fclose(f);
  // Every datagram that arrives within ms.
  auto recv_for = [&](int ms) {
    std::vector<std::string> got;
    for (int waited = 0; waited < ms; waited += 20) {
      char buf[512];
      ssize_t n;
      while ((n = recv(nfd, buf, sizeof buf, MSG_DONTWAIT)) > 0) got.emplace_back(buf, n);
      usleep(20000);
    }
    return got;
  };
  {
    AgentProcess agent({"--config", conf},
                       {"NOTIFY_SOCKET=" + notify, "WATCHDOG_USEC=400000", "WATCHDOG_PID=self"});
    std::vector<std::string> got = recv_for(3000);
    ASSERT_FALSE(got.empty()) << "no READY=1 within 3 s";
    // READY first, after the control socket exists; the name comes from the
    // command line (AgentProcess passes --name), the mode from the file.
    EXPECT_EQ(got[0].rfind("READY=1\nSTATUS=", 0), 0u) << got[0];
    EXPECT_NE(got[0].find("'agent-under-test' serving 0 guests (mode sink)"), std::string::npos)
        << got[0];
    struct stat st;
    EXPECT_EQ(stat(agent.ctl().c_str(), &st), 0);
    // 3 s at one ping per 200 ms: well over 5 even on a loaded machine.
    size_t pings = 0;
    for (const auto& m : got) pings += m == "WATCHDOG=1";
    EXPECT_GE(pings, 5u);
    EXPECT_EQ(agent.Stop(), 0);
    got = recv_for(200);
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.back(), "STOPPING=1\nSTATUS=shutting down");
  }
  close(nfd);
  std::string cmd = "rm -rf " + dir;
  (void)!system(cmd.c_str());
}

// A bad line in the configuration file is named by file and line, exit 2.
TEST(AgentProcessTest, ABadConfigLineIsNamed) {
  char path[] = "/tmp/npa-conf-bad.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const char text[] = "mode sink\nburst 0\n";
  ASSERT_EQ(write(fd, text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
  close(fd);
  CmdResult r = Sh(std::string(NPA_AGENT_BIN) + " --config " + path + " 2>&1");
  unlink(path);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find(std::string(path) + ":2: --burst"), std::string::npos) << r.out;
}

TEST(AgentProcessTest, ControlSocketFailureExitsOne) {
  EXPECT_EQ(Sh(std::string(NPA_AGENT_BIN) +
               " --control /nonexistent-dir/x/agent.sock 2>/dev/null").rc, 1);
}

TEST(AgentProcessTest, TapUplinkInPrivateNetns) {
  // This test process (and the agent it forks) get a private network
  // namespace; the TAP vanishes with it.
  if (unshare(CLONE_NEWNET) != 0) GTEST_SKIP() << "unshare(CLONE_NEWNET) needs root";
  AgentProcess agent({"--tap", "npatest0"});
  auto s = ConnectUnix(agent.ctl(), 5000);
  ASSERT_TRUE(s.ok()) << s.status();
  ControlChannel ch(std::move(*s));
  ASSERT_TRUE(ch.Send(Hello("tapguest")).ok());
  auto w = ch.ReceiveBlocking(5000);
  ASSERT_TRUE(w.ok() && w->env.has_welcome());
  EXPECT_TRUE(w->env.welcome().link_up());
  CmdResult r = agent.Npactl("--json agent");
  ASSERT_EQ(r.rc, 0);
  EXPECT_TRUE(JsonCheck(r.out, "d[\"uplink\"][\"name\"] == \"npatest0\" and d[\"guests\"] == 1"))
      << r.out;
  CmdResult link = Sh("ip -o link show npatest0");
  EXPECT_NE(link.out.find("UP"), std::string::npos) << link.out;
  EXPECT_EQ(agent.Stop(), 0);
  EXPECT_NE(Sh("ip -o link show npatest0 2>/dev/null").rc, 0);  // gone with the agent
}

}  // namespace
// Issue 9 part 1 with the real binaries: the admin socket is 0600, and
// npactl pointed at the guests' control socket is refused with a hint.
TEST(AgentProcessTest, NpactlOnlyOnTheAdminSocket) {
  AgentProcess agent({"--mode", "switch"});
  auto s = ConnectUnix(agent.ctl(), 5000);  // waits for the agent
  ASSERT_TRUE(s.ok()) << s.status();
  CmdResult r;
  for (int i = 0; i < 100; i++) {
    r = agent.Npactl("agent");
    if (r.rc == 0) break;
    usleep(20000);
  }
  EXPECT_EQ(r.rc, 0) << r.out;
  struct stat st;
  ASSERT_EQ(stat((agent.ctl() + ".admin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  r = Sh(std::string(NPACTL_BIN) + " --socket " + agent.ctl() + " agent 2>&1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("DENIED: operator requests go to the admin socket"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--socket must name the admin socket"), std::string::npos) << r.out;
  r = Sh(std::string(NPACTL_BIN) + " --socket " + agent.ctl() + ".admin migrate shell0 --to 127.0.0.1:1 2>&1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("no guest named or numbered 'shell0'"), std::string::npos) << r.out;
}

}  // namespace npa

namespace npa {
namespace {

// RSS on the emulated path end to end: a real shell with two queue pairs
// and its own RSS table tells the real agent (RssConfig), and every frame
// another shell sends it arrives on the queue npa_rss_queue gives its hash
// (the shell's own), whichever queue the sender used. 256 UDP flows, both
// queues used.
TEST(AgentProcessTest, RxArrivesOnTheQueueTheGuestsRssTableNames) {
  AgentProcess agent({"--mode", "switch"});
  for (int i = 0; i < 500 && access(agent.ctl().c_str(), F_OK) != 0; i++) usleep(10000);
  auto open = [&](const char* name, uint16_t nq, uint64_t offloads) -> npa_shell* {
    npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
    oa.control_path = agent.ctl().c_str();
    oa.name = name;
    npa_shell* sh = nullptr;
    if (npa_shell_open(&oa, &sh) != 0) return nullptr;
    npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
    qc.nb_queue_pairs = nq;
    qc.offloads = offloads;
    if (npa_shell_configure(sh, &qc) != 0) {
      npa_shell_close(sh);
      return nullptr;
    }
    return sh;
  };
  npa_shell* rx = open("rss-rx", 2, NPA_OFFLOAD_RSS_HASH);
  ASSERT_NE(rx, nullptr) << npa_shell_last_error(nullptr);
  // Not round robin: the agent must use this table, not a default one.
  const uint16_t table[8] = {1, 1, 0, 1, 0, 0, 1, 0};
  npa_rss_config rc = NPA_RSS_CONFIG_INIT;
  rc.hash_types = NPA_RSS_HASH_UDPV4 | NPA_RSS_HASH_IPV4;
  rc.table = table;
  rc.table_len = 8;
  ASSERT_EQ(npa_shell_set_rss(rx, &rc), 0) << npa_shell_last_error(rx);
  npa_shell* tx = open("rss-tx", 2, 0);
  ASSERT_NE(tx, nullptr) << npa_shell_last_error(nullptr);
  ASSERT_EQ(npa_shell_start(rx), 0) << npa_shell_last_error(rx);
  ASSERT_EQ(npa_shell_start(tx), 0) << npa_shell_last_error(tx);
  CmdResult r;
  for (int i = 0; i < 250; i++) {
    r = agent.Npactl("--json guests");
    if (r.rc == 0 && JsonCheck(r.out, "[g[\"state\"] for g in d[\"guests\"]] == [\"RUNNING\", \"RUNNING\"]"))
      break;
    usleep(20000);
  }
  ASSERT_TRUE(JsonCheck(r.out, "[g[\"state\"] for g in d[\"guests\"]] == [\"RUNNING\", \"RUNNING\"]"))
      << r.out;
  npa_shell_info ri, ti;
  ri.struct_size = sizeof ri;
  ti.struct_size = sizeof ti;
  ASSERT_EQ(npa_shell_get_info(rx, &ri), 0);
  ASSERT_EQ(npa_shell_get_info(tx, &ti), 0);

  constexpr int kFlows = 256;
  // Received while sending, as a driver would: RX buffers are posted again
  // as frames are taken, so the rings never run dry. (A receiver that stops
  // polling gets a full ring, and the agent drops and counts the rest in
  // rx_dropped: under load that took 4 of 256 here.)
  int got[2] = {0, 0}, misplaced = 0, unhashed = 0;
  auto drain = [&] {
    for (uint16_t q = 0; q < 2; q++) {
      npa_buf* bufs[32];
      const uint16_t n = npa_rx_burst(rx, q, bufs, 32);
      for (uint16_t k = 0; k < n; k++) {
        const auto* f = static_cast<const uint8_t*>(npa_buf_data(bufs[k]));
        if (f[12] != 0x08 || f[13] != 0x00) continue;  // not ours (an announce)
        got[q]++;
        if (!(bufs[k]->ol_flags & NPA_BUF_OL_RX_RSS_HASH)) {
          unhashed++;
        } else if (npa_rss_queue(rx, bufs[k]->rss_hash) != q) {
          misplaced++;
        }
      }
      if (n) npa_buf_free(rx, q, bufs, n);
    }
  };
  int sent = 0;
  for (int tries = 0; sent < kFlows && tries < 5000; tries++) {
    drain();
    npa_buf* b = nullptr;
    const uint16_t q = static_cast<uint16_t>(sent % 2);  // both sender queues
    if (npa_buf_alloc(tx, q, &b, 1) != 1) {
      usleep(1000);
      continue;
    }
    auto* f = static_cast<uint8_t*>(npa_buf_data(b));
    memset(f, 0, 60);
    memcpy(f, ri.mac, 6);
    memcpy(f + 6, ti.mac, 6);
    f[12] = 0x08;
    f[14] = 0x45, f[17] = 46, f[22] = 64, f[23] = 17;  // IPv4, UDP
    f[26] = 10, f[29] = 1, f[30] = 10, f[33] = 2;
    const uint16_t sport = static_cast<uint16_t>(20000 + sent);
    f[34] = sport >> 8, f[35] = sport & 0xff, f[36] = 0x12, f[37] = 0xb5, f[39] = 26;
    b->data_len = 60;
    b->pkt_len = 60;
    if (npa_tx_burst(tx, q, &b, 1) == 1) {
      sent++;
    } else {
      npa_buf_free(tx, q, &b, 1);
      usleep(1000);
    }
  }
  ASSERT_EQ(sent, kFlows);
  for (int i = 0; i < 5000 && got[0] + got[1] < kFlows; i++) {
    drain();
    usleep(1000);
  }
  // The agent counts what a full RX ring made it drop (rx_dropped): shown
  // when frames are missing, so they are accounted for.
  EXPECT_EQ(got[0] + got[1], kFlows) << got[0] << " + " << got[1] << "; the agent's view: "
                                     << agent.Npactl("--json stats rss-rx").out;
  EXPECT_EQ(unhashed, 0);
  EXPECT_EQ(misplaced, 0) << "frames not on the queue their hash's table entry names";
  EXPECT_GT(got[0], 0);
  EXPECT_GT(got[1], 0);
  npa_shell_close(tx);
  npa_shell_close(rx);
  EXPECT_EQ(agent.Stop(), 0);
}

}  // namespace
}  // namespace npa
