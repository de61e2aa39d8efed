// npactl migrate prints each phase as the agent reports it, not only at the
// end. The real npactl binary talks to a scripted admin socket here: the test
// sends one progress reply (Migrate.progress), waits until npactl has printed
// that phase's line, and only then sends the next; a phase line that only
// appeared with the final reply would time the test out. The final reply's
// phases that npactl already printed are not printed twice. With --json the
// request asks for no progress and one object comes out. Every wait is
// bounded; the child is killed if it outlives the test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"

namespace npa {
namespace {

class NpactlMigrateProgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/npactl-progress.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto l = ListenUnix(dir_ + "/admin");
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
    std::string cmd = "rm -rf " + dir_;
    (void)system(cmd.c_str());
  }

  // Starts npactl with args; its stdout is read through out_.
  void Start(std::vector<std::string> args) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      dup2(p[1], 1);
      std::vector<char*> argv;
      static std::string bin = NPACTL_BIN, sock = "--socket";
      std::string path = dir_ + "/admin";
      argv.push_back(bin.data());
      argv.push_back(sock.data());
      argv.push_back(path.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(p[1]);
    out_ = p[0];
  }

  // The session npactl opened, and its request.
  void Accept() {
    pollfd pf{listener_.get(), POLLIN, 0};
    ASSERT_EQ(poll(&pf, 1, 5000), 1) << "npactl did not connect";
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(fd, 0);
    ch_ = std::make_unique<ControlChannel>(UniqueFd(fd));
    auto f = ch_->ReceiveBlocking(5000);
    ASSERT_TRUE(f.ok()) << f.status();
    req_ = f->env;
  }

  void Reply(bool progress, std::vector<std::pair<std::string, uint64_t>> phases,
             const std::string& state, const std::string& message = "") {
    control::Envelope e;
    e.set_seq(req_.seq());
    auto* a = e.mutable_admin_reply();
    a->set_agent_name("fake-a");
    a->set_progress(progress);
    for (auto& [name, us] : phases) {
      auto* p = a->add_phases();
      p->set_name(name);
      p->set_duration_us(us);
      p->set_detail("detail of " + name);
    }
    a->set_migration_state(state);
    a->set_message(message);
    ASSERT_TRUE(ch_->Send(e).ok());
  }

  // Reads npactl's stdout until `want` is in it (true) or 5 s pass or EOF.
  bool ReadUntil(const std::string& want) {
    const uint64_t end = MonotonicMs() + 5000;
    while (text_.find(want) == std::string::npos) {
      const uint64_t now = MonotonicMs();
      if (now >= end) return false;
      pollfd pf{out_, POLLIN, 0};
      if (poll(&pf, 1, static_cast<int>(end - now)) <= 0) return false;
      char buf[4096];
      ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) return false;
      text_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  int Exit() {
    int st = 0;
    const uint64_t end = MonotonicMs() + 5000;
    while (MonotonicMs() < end) {
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      usleep(10000);
    }
    return -1;
  }

  static size_t Count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
    return n;
  }

  std::string dir_;
  UniqueFd listener_;
  std::unique_ptr<ControlChannel> ch_;
  control::Envelope req_;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string text_;
};

TEST_F(NpactlMigrateProgressTest, EachPhaseIsPrintedWhenItEnds) {
  Start({"migrate", "g1", "--to", "10.0.0.2:7000"});
  ASSERT_NO_FATAL_FAILURE(Accept());
  ASSERT_TRUE(req_.has_admin_request() && req_.admin_request().has_migrate());
  EXPECT_TRUE(req_.admin_request().migrate().progress()) << "text mode asks for progress";
  EXPECT_EQ(req_.admin_request().migrate().guest(), "g1");
  Reply(true, {{"offer", 1500}}, "STOPPING");
  ASSERT_TRUE(ReadUntil("detail of offer\n")) << "the first phase was not printed on its own: " << text_;
  EXPECT_EQ(text_.find("total"), std::string::npos) << text_;
  Reply(true, {{"stop", 250}}, "STOP_COPY");
  ASSERT_TRUE(ReadUntil("detail of stop\n")) << text_;
  // The final reply lists every phase; only the one not yet shown is added.
  Reply(false, {{"offer", 1500}, {"stop", 250}, {"commit", 750}}, "COMMITTED", "guest g1 is on b");
  ASSERT_TRUE(ReadUntil("guest g1 is on b\n")) << text_;
  EXPECT_EQ(Exit(), 0) << text_;
  EXPECT_EQ(Count(text_, "detail of offer"), 1u) << text_;
  EXPECT_EQ(Count(text_, "detail of stop"), 1u) << text_;
  EXPECT_EQ(Count(text_, "detail of commit"), 1u) << text_;
  EXPECT_NE(text_.find("total           2.500  state COMMITTED"), std::string::npos) << text_;
  EXPECT_LT(text_.find("PHASE"), text_.find("offer"));
}

TEST_F(NpactlMigrateProgressTest, JsonAsksForNoProgressAndPrintsOneObject) {
  Start({"--json", "migrate", "g1", "--to", "10.0.0.2:7000"});
  ASSERT_NO_FATAL_FAILURE(Accept());
  EXPECT_FALSE(req_.admin_request().migrate().progress());
  Reply(false, {{"offer", 1000}, {"commit", 500}}, "COMMITTED", "done");
  ASSERT_TRUE(ReadUntil("}\n")) << text_;
  EXPECT_EQ(Exit(), 0);
  EXPECT_EQ(text_.rfind("{\"agent\":\"fake-a\",\"guest\":\"g1\",\"to\":\"10.0.0.2:7000\",\"state\":\"COMMITTED\"", 0), 0u)
      << text_;
  EXPECT_NE(text_.find("\"total_us\":1500"), std::string::npos) << text_;
}

// An agent that goes away after a progress reply: npactl exits 1 at once
// (no final reply), with what it printed so far.
TEST_F(NpactlMigrateProgressTest, AgentGoneAfterProgressIsAnError) {
  Start({"migrate", "g1", "--to", "10.0.0.2:7000", "--timeout", "300"});
  ASSERT_NO_FATAL_FAILURE(Accept());
  Reply(true, {{"offer", 1000}}, "STOPPING");
  ASSERT_TRUE(ReadUntil("detail of offer\n")) << text_;
  // npactl waits --timeout + 20 s for the whole move: too long for a test,
  // so the session is closed instead, which must end it at once.
  ch_.reset();
  EXPECT_EQ(Exit(), 1);
}

}  // namespace
}  // namespace npa
