// `npactl events --follow --json` against the real npa-agent: a guest comes
// up (its vhost-user back end negotiated by a test front end) and goes down,
// and the follower's JSON lines say so in order with the right fields. Also:
// the recent events without --follow, SIGINT ends a follower with 0, an
// agent that goes away ends it with 1, and a guest session asking for the
// events is denied. Every wait is bounded; per-test temp dirs (pid suffix).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"
#include "tests/support/test_frontend.h"

namespace npa {
namespace {

using Json = nlohmann::json;

pid_t Spawn(std::vector<std::string> args, int out_fd, const std::string& err_path = "",
            const char* env = nullptr) {
  pid_t pid = fork();
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
    if (!err_path.empty()) {
      int e = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (e >= 0) dup2(e, STDERR_FILENO);
    }
    if (env) putenv(const_cast<char*>(env));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Exit status after waiting up to ms (SIGKILL and -1 after that).
int WaitExit(pid_t pid, int ms) {
  int st = 0;
  const uint64_t end = MonotonicMs() + ms;
  while (MonotonicMs() < end) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

class Agent {
 public:
  // json_logs: NPA_LOG_FORMAT=json, level info, stderr kept in log_path().
  explicit Agent(bool json_logs = false) {
    char tmpl[] = "/tmp/npa-events-test.XXXXXX";
    if (mkdtemp(tmpl)) dir_ = tmpl;
    ctl_ = dir_ + "/agent.sock";
    pid_ = Spawn({NPA_AGENT_BIN, "--control", ctl_, "--name", "events-under-test", "--mode", "switch",
                  "--log-level", json_logs ? "info" : "warn"},
                 -1, json_logs ? log_path() : "", json_logs ? "NPA_LOG_FORMAT=json" : nullptr);
    for (int i = 0; i < 500 && access((ctl_ + ".admin").c_str(), F_OK) != 0; i++) usleep(10000);
  }
  ~Agent() {
    Stop();
    std::string cmd = "rm -rf " + dir_;
    (void)!system(cmd.c_str());
  }
  int Stop() {
    if (pid_ <= 0) return 0;
    kill(pid_, SIGTERM);
    int rc = WaitExit(pid_, 5000);
    pid_ = -1;
    return rc;
  }
  const std::string& ctl() const { return ctl_; }
  std::string admin() const { return ctl_ + ".admin"; }
  std::string log_path() const { return dir_ + "/agent.log"; }

 private:
  std::string dir_, ctl_;
  pid_t pid_ = -1;
};

// npactl events with its stdout on a pipe we read line by line.
class Npactl {
 public:
  explicit Npactl(const std::string& admin, const std::string& args) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    std::vector<std::string> argv = {NPACTL_BIN, "--socket", admin};
    size_t i = 0;
    while (i < args.size()) {
      size_t j = args.find(' ', i);
      if (j == std::string::npos) j = args.size();
      if (j > i) argv.push_back(args.substr(i, j - i));
      i = j + 1;
    }
    pid_ = Spawn(argv, p[1]);
    close(p[1]);
    rd_ = p[0];
  }
  ~Npactl() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (rd_ >= 0) close(rd_);
  }
  // The next line, or "" after ms.
  std::string Line(int ms) {
    const uint64_t end = MonotonicMs() + ms;
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const uint64_t now = MonotonicMs();
      if (now >= end) return "";
      pollfd pf{rd_, POLLIN, 0};
      if (poll(&pf, 1, static_cast<int>(end - now)) <= 0) continue;
      char b[4096];
      ssize_t n = read(rd_, b, sizeof b);
      if (n <= 0) return "";
      buf_.append(b, n);
    }
  }
  // The next event line of `kind` (skipping others, which are kept), as JSON.
  Json Next(const std::string& kind, int ms, std::vector<Json>* seen) {
    const uint64_t end = MonotonicMs() + ms;
    while (MonotonicMs() < end) {
      std::string l = Line(static_cast<int>(end - MonotonicMs()));
      if (l.empty()) break;
      Json j = Json::parse(l);  // throws (test fails) on a line that is not JSON
      seen->push_back(j);
      if (j["kind"] == kind) return j;
    }
    return Json();
  }
  int Signal(int sig, int ms) {
    kill(pid_, sig);
    int rc = WaitExit(pid_, ms);
    pid_ = -1;
    return rc;
  }
  int Wait(int ms) {
    int rc = WaitExit(pid_, ms);
    pid_ = -1;
    return rc;
  }

 private:
  pid_t pid_ = -1;
  int rd_ = -1;
  std::string buf_;
};

control::Envelope Hello(const std::string& name) {
  control::Envelope e;
  e.mutable_hello()->set_name(name);
  e.mutable_hello()->set_queue_pairs(1);
  e.mutable_hello()->set_pid(getpid());
  return e;
}

TEST(EventsProcessTest, FollowerSeesGuestUpAndDownInOrder) {
  Agent agent;
  // Whenever the follower's request lands, nothing is lost: what happened
  // before it is in the history its first reply carries.
  Npactl follow(agent.admin(), "events --follow --json");

  auto s = ConnectUnix(agent.ctl(), 5000);
  ASSERT_TRUE(s.ok()) << s.status();
  ControlChannel ch(std::move(*s));
  ASSERT_TRUE(ch.Send(Hello("ev0")).ok());
  auto w = ch.ReceiveBlocking(5000);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->env.has_welcome()) << BodyName(w->env);
  ASSERT_EQ(w->fds.size(), 1u);
  const uint64_t gid = w->env.welcome().guest_id();
  agent::TestFrontend::Config cfg;
  cfg.seal_memory = true;  // a control-protocol guest's back end requires it
  auto fe = agent::TestFrontend::Create(std::move(w->fds[0]), cfg);
  ASSERT_TRUE(fe.ok()) << fe.status();
  ASSERT_TRUE((*fe)->Handshake().ok());

  std::vector<Json> seen;
  Json up = follow.Next("guest_up", 10000, &seen);
  ASSERT_FALSE(up.is_null()) << "no guest_up line";
  EXPECT_EQ(up["guest"], "ev0");
  EXPECT_EQ(up["guest_id"], gid);
  EXPECT_EQ(up["vf"], "");
  EXPECT_GT(up["seq"].get<uint64_t>(), 0u);
  EXPECT_GT(up["time_unix_ms"].get<uint64_t>(), 1600000000000ull);
  for (const char* k : {"seq", "time_unix_ms", "mono_ns", "kind", "guest", "guest_id", "vf",
                        "duration_us", "detail"})
    EXPECT_TRUE(up.contains(k)) << k;

  // Down: the shell says bye.
  control::Envelope bye;
  bye.mutable_bye()->set_reason("test done");
  ASSERT_TRUE(ch.Send(bye).ok());
  Json down = follow.Next("guest_down", 10000, &seen);
  ASSERT_FALSE(down.is_null()) << "no guest_down line";
  EXPECT_EQ(down["guest"], "ev0");
  EXPECT_EQ(down["guest_id"], gid);
  EXPECT_NE(down["detail"].get<std::string>().find("test done"), std::string::npos) << down.dump();
  EXPECT_GT(down["seq"].get<uint64_t>(), up["seq"].get<uint64_t>());
  EXPECT_GE(down["mono_ns"].get<uint64_t>(), up["mono_ns"].get<uint64_t>());
  // Sequence numbers strictly increase across every line seen.
  for (size_t i = 1; i < seen.size(); i++)
    EXPECT_LT(seen[i - 1]["seq"].get<uint64_t>(), seen[i]["seq"].get<uint64_t>());

  // Without --follow: the history has both, in order, and npactl exits 0.
  Npactl once(agent.admin(), "--json events");
  EXPECT_EQ(once.Wait(10000), 0);
  std::vector<std::string> kinds;
  for (std::string l = once.Line(1000); !l.empty(); l = once.Line(1000)) {
    Json j = Json::parse(l);
    if (j["guest"] == "ev0") kinds.push_back(j["kind"]);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"guest_up", "guest_down"}));

  // SIGINT ends the follower with 0.
  EXPECT_EQ(follow.Signal(SIGINT, 5000), 0);
}

TEST(EventsProcessTest, AFollowerWhoseAgentGoesAwayExitsOne) {
  Agent agent;
  {
    // One event in the history (a guest that says hello and bye), so the
    // follower's first line tells us it is connected.
    auto s = ConnectUnix(agent.ctl(), 5000);
    ASSERT_TRUE(s.ok()) << s.status();
    ControlChannel ch(std::move(*s));
    ASSERT_TRUE(ch.Send(Hello("brief")).ok());
    // Keep the Welcome (and its vhost-user fd) until the Bye is sent: closing
    // that fd first makes the agent close the session, and the Bye then
    // races with the close (EPIPE; 3 runs in 15 failed that way).
    auto w = ch.ReceiveBlocking(5000);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->env.has_welcome()) << BodyName(w->env);
    control::Envelope bye;
    bye.mutable_bye()->set_reason("bye");
    ASSERT_TRUE(ch.Send(bye).ok());
  }
  std::vector<Json> seen;
  for (int i = 0; i < 100 && seen.empty(); i++) {
    Npactl once(agent.admin(), "--json events");
    if (!once.Next("guest_down", 2000, &seen).is_null()) break;
    seen.clear();
    usleep(20000);
  }
  ASSERT_FALSE(seen.empty()) << "the agent never listed the guest_down";
  Npactl follow(agent.admin(), "events --follow --json");
  ASSERT_FALSE(follow.Next("guest_down", 10000, &seen).is_null()) << "follower not connected";
  EXPECT_EQ(agent.Stop(), 0);
  EXPECT_EQ(follow.Wait(10000), 1);
}

TEST(EventsProcessTest, AGuestSessionMayNotAskForEvents) {
  Agent agent;
  auto s = ConnectUnix(agent.ctl(), 5000);
  ASSERT_TRUE(s.ok()) << s.status();
  ControlChannel ch(std::move(*s));
  ASSERT_TRUE(ch.Send(Hello("ev1")).ok());
  auto w = ch.ReceiveBlocking(5000);
  ASSERT_TRUE(w.ok() && w->env.has_welcome());
  control::Envelope req;
  req.mutable_admin_request()->mutable_events()->set_follow(true);
  ASSERT_TRUE(ch.Send(req).ok());
  bool denied = false;
  for (int i = 0; i < 4 && !denied; i++) {
    auto f = ch.ReceiveBlocking(5000);
    if (!f.ok()) break;
    denied = f->env.has_error() && f->env.error().code() == control::Error::DENIED;
  }
  EXPECT_TRUE(denied);
}

// NPA_LOG_FORMAT=json: every line the agent writes is a JSON object, and
// the lines about a guest carry its name as a field.
TEST(EventsProcessTest, JsonLogLinesNameTheirGuest) {
  Agent agent(/*json_logs=*/true);
  {
    auto s = ConnectUnix(agent.ctl(), 5000);
    ASSERT_TRUE(s.ok()) << s.status();
    ControlChannel ch(std::move(*s));
    ASSERT_TRUE(ch.Send(Hello("evjson")).ok());
    auto w = ch.ReceiveBlocking(5000);
    ASSERT_TRUE(w.ok() && w->env.has_welcome());
    agent::TestFrontend::Config cfg;
    cfg.seal_memory = true;
    auto fe = agent::TestFrontend::Create(std::move(w->fds[0]), cfg);
    ASSERT_TRUE(fe.ok()) << fe.status();
    ASSERT_TRUE((*fe)->Handshake().ok());
    Npactl follow(agent.admin(), "events --follow --json");
    std::vector<Json> seen;
    ASSERT_FALSE(follow.Next("guest_up", 10000, &seen).is_null());
    control::Envelope bye;
    bye.mutable_bye()->set_reason("json log test");
    ASSERT_TRUE(ch.Send(bye).ok());
    ASSERT_FALSE(follow.Next("guest_down", 10000, &seen).is_null());
  }
  EXPECT_EQ(agent.Stop(), 0);
  FILE* f = fopen(agent.log_path().c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[8192];
  int lines = 0, about_guest = 0;
  while (fgets(line, sizeof line, f)) {
    std::string l(line);
    ASSERT_FALSE(l.empty());
    ASSERT_EQ(l.back(), '\n') << l;
    Json j = Json::parse(l);  // throws (the test fails) if a line is not JSON
    lines++;
    for (const char* k : {"time", "mono", "level", "component", "pid", "message"})
      EXPECT_TRUE(j.contains(k)) << k << " missing: " << l;
    EXPECT_EQ(j["component"], "npa-agent");
    const std::string msg = j["message"];
    if (msg.find("guest evjson") != std::string::npos || msg.find("[evjson]") != std::string::npos) {
      about_guest++;
      EXPECT_EQ(j.value("guest", ""), "evjson") << l;
    }
  }
  fclose(f);
  EXPECT_GT(lines, 3);
  EXPECT_GE(about_guest, 3) << "attached, READY, RUNNING, closed are logged at info";
}

}  // namespace
}  // namespace npa
