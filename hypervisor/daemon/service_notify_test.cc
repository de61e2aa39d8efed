#include "hypervisor/daemon/service_notify.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

// Plays the service manager: a datagram socket at NOTIFY_SOCKET.
class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/npa-notify.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    setenv("WATCHDOG_USEC", "200000", 1);  // 200 ms: a ping is due every 100 ms
    setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  }
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // Every datagram waiting now (none: empty).
  std::vector<std::string> Drain() {
    std::vector<std::string> out;
    pollfd p{fd_, POLLIN, 0};
    while (poll(&p, 1, 50) == 1) {
      char buf[512];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.emplace_back(buf, static_cast<size_t>(n));
    }
    return out;
  }

  std::string dir_, path_;
  int fd_ = -1;
};

constexpr uint64_t kMs = 1000000;

TEST_F(ServiceNotifyTest, ReadyWatchdogAndStoppingReachTheManager) {
  ServiceNotifier n = ServiceNotifier::FromEnvironment();
  ASSERT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog_usec(), 200000u);
  n.Ready("serving 0 guests");
  EXPECT_EQ(Drain(), std::vector<std::string>{"READY=1\nSTATUS=serving 0 guests"});
  // The first tick pings at once; the next only after half the period.
  EXPECT_TRUE(n.Tick(1000 * kMs, 10));
  EXPECT_FALSE(n.Tick(1050 * kMs, 20));
  EXPECT_TRUE(n.Tick(1100 * kMs, 30));
  EXPECT_EQ(Drain(), (std::vector<std::string>{"WATCHDOG=1", "WATCHDOG=1"}));
  n.Stopping("shutting down");
  EXPECT_EQ(Drain(), std::vector<std::string>{"STOPPING=1\nSTATUS=shutting down"});
  EXPECT_EQ(n.pings(), 2u);
}

// A wedged dataplane (its loop counter stands still) gets no ping however
// often the control loop ticks, so systemd restarts the agent; once it moves
// again the pings resume.
TEST_F(ServiceNotifyTest, AStalledDataplaneWithholdsThePing) {
  ServiceNotifier n = ServiceNotifier::FromEnvironment();
  ASSERT_TRUE(n.Tick(0, 5));
  Drain();
  for (uint64_t t = 100; t <= 1000; t += 100) EXPECT_FALSE(n.Tick(t * kMs, 5)) << t;
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(n.withheld(), 10u);
  EXPECT_TRUE(n.Tick(1100 * kMs, 6));
  EXPECT_EQ(Drain(), std::vector<std::string>{"WATCHDOG=1"});
}

// WATCHDOG_PID naming another process: the watchdog is not ours (a child
// that inherited the environment must not ping for its parent).
TEST_F(ServiceNotifyTest, AWatchdogForAnotherPidIsIgnored) {
  setenv("WATCHDOG_PID", "1", 1);
  ServiceNotifier n = ServiceNotifier::FromEnvironment();
  EXPECT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog_usec(), 0u);
  EXPECT_FALSE(n.Tick(0, 1));
  EXPECT_FALSE(n.Tick(1000 * kMs, 2));
  EXPECT_TRUE(Drain().empty());
}

// Not under systemd: nothing is sent and nothing fails.
TEST_F(ServiceNotifyTest, WithoutNotifySocketEverythingIsANoOp) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier n = ServiceNotifier::FromEnvironment();
  EXPECT_FALSE(n.enabled());
  n.Ready("x");
  EXPECT_FALSE(n.Tick(0, 1));
  n.Stopping("y");
  EXPECT_TRUE(Drain().empty());
}

}  // namespace
}  // namespace npa::agent
