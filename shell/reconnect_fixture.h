// shell/reconnect_fixture.h — TEST ONLY: a shell whose agents come and go,
// for reconnect_test.cc (migration between two agents, an unreachable
// destination, an agent restart).
//
// Each TestAgent listens on its own control socket under a per-process
// directory. Serve() accepts one session on a thread: it reads the Hello
// (kept in hello()), answers Welcome, serves the shell's vhost-user session
// with the agent's own back end as loopback (tests/support/
// loopback_backend.h: every TX frame comes back on RX) and takes the
// RegionAnnounce. Die() is an agent crash: the back end goes first (so
// nothing is served after the shell reads the rings), then the socket.
//
//   TestAgent a(dir_ + "/a.ctl", "agent-a");
//   a.Serve();                                   // before npa_shell_open
//   ... open, configure, start; a.Wait() ...
//   control::MigrateReady r = a.Prepare(7);
#ifndef NPA_SHELL_RECONNECT_FIXTURE_H_
#define NPA_SHELL_RECONNECT_FIXTURE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/control_codec.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "npa/shell.h"
#include "shell/vf/vf_switch_fixture.h"
#include "tests/support/fake_agent_test_util.h"
#include "tests/support/loopback_backend.h"

namespace npa::shell {

class TestAgent {
 public:
  TestAgent(std::string path, std::string name);
  ~TestAgent();

  const std::string& path() const { return path_; }
  // Accept one session (in a thread; Wait() joins it) and serve it.
  void Serve();
  // Joins Serve's thread; false if it failed (the failure was reported).
  bool Wait();
  // The Hello of the last session served.
  const control::Hello& hello() const { return hello_; }
  bool serving() const { return backend_ != nullptr; }

  control::MigrateReady Prepare(uint64_t id);
  void Abort(uint64_t id);
  void Commit(uint64_t id, const std::string& to, const std::string& ticket,
              const std::string& agent_name, uint32_t timeout_ms, const std::string& return_path);
  // A VfOffer with a stand-in fd (the test's VfioDeviceIo factory answers
  // for it); the shell's VfAccept.
  control::VfAccept Offer(uint64_t id, uint32_t ven, uint32_t dev);
  // The next frame from the shell, within ms.
  absl::StatusOr<ControlFrame> Receive(int ms);
  // An agent crash: back end first, then the control socket.
  void Die();
  // Stop listening (the socket file goes: a connect gets ENOENT).
  void Unlisten();

 private:
  std::string path_, name_;
  UniqueFd listen_;
  std::thread thread_;
  std::atomic<bool> ok_{false};
  control::Hello hello_;
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<LoopbackBackend> backend_;
};

class ReconnectTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Opens, configures (ring 256) and starts a shell on `a`.
  void OpenShell(TestAgent& a, uint32_t reconnect_ms = 0);
  // Waits up to ms for an event of `type`; *ev gets it.
  bool NextEvent(npa_event_type type, npa_event* ev, int ms);
  // An agent listening on dir_/file; it lives until after the shell closed
  // (TearDown), so the shell never chases agents the test already dropped.
  TestAgent& NewAgent(const std::string& file, const std::string& name);

  std::string dir_;
  std::vector<std::unique_ptr<TestAgent>> agents_;
  npa_shell* sh_ = nullptr;
  std::unique_ptr<Guest> guest_;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_RECONNECT_FIXTURE_H_
