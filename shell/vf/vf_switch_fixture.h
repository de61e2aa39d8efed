// shell/vf/vf_switch_fixture.h — TEST ONLY: the VF path end to end without
// hardware, shared by vf_switch_test.cc (attach, revoke, fallback) and
// vf_offload_test.cc (software offloads on a VF without them).
//
// A test-side agent (FakeAgent) speaks the control protocol on a real
// socket; the agent's own vhost-user back end reflects the emulated path's
// frames (tests/support/loopback_backend.h); the "VF" is a fake VFIO device
// (VfioDeviceIo seam, tests/support/fake_vfio_test_util.h) driven by the
// software loopback plug-in tests/plugins/test_good (or another directory of
// tests/plugins, SetPluginDir).
//
//   TEST_F(VfSwitchTest, Something) {
//     ASSERT_NO_FATAL_FAILURE(OpenShell());              // open, configure, start
//     control::VfAccept a = Offer(7, kLbVendor, kLbDevice);
//     ASSERT_TRUE(a.accepted()) << a.reason();
//     control::RevokeDone d = Revoke(7, /*timeout_ms=*/2000);
//   }
#ifndef NPA_SHELL_VF_VF_SWITCH_FIXTURE_H_
#define NPA_SHELL_VF_VF_SWITCH_FIXTURE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/control_codec.h"
#include "gtest/gtest.h"
#include "npa/shell.h"
#include "tests/support/fake_agent_test_util.h"
#include "tests/support/fake_vfio_test_util.h"
#include "tests/support/loopback_backend.h"

namespace npa::shell {

using Clock = std::chrono::steady_clock;

// The loopback plug-in's PCI identity (tests/plugins/test_good).
inline constexpr uint32_t kLbVendor = 0x1d0f, kLbDevice = 0x100f;

// Polls cond every millisecond for up to ms; its last value.
bool WaitFor(const std::function<bool()>& cond, int ms);

// The shell's totals over every queue (npa_shell_queue_stats, UINT16_MAX).
npa_queue_stats Stats(npa_shell* sh);

// A guest thread on queue 0: sends frames numbered 0,1,2,... keeping at
// most kWindow in flight (so the loopback never finds a full RX ring), and
// records every number received.
class Guest {
 public:
  static constexpr uint32_t kWindow = 48;
  static constexpr uint32_t kMax = 1u << 22;
  static constexpr uint16_t kFrameLen = 64;  // every frame it sends

  explicit Guest(npa_shell* sh) : sh_(sh), seen_(kMax, 0) {}
  void Start() { thread_ = std::thread([this] { Run(); }); }
  // Stop sending, then keep receiving until everything came back or 3 s.
  void Finish() {
    sending_ = false;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  uint64_t dups() const { return dups_; }
  uint64_t first_missing() const;
  uint64_t missing() const;

 private:
  void Run();

  npa_shell* sh_;
  std::thread thread_;
  std::atomic<bool> sending_{true};
  std::atomic<uint64_t> sent_{0}, received_{0}, dups_{0}, bogus_{0};
  std::vector<uint8_t> seen_;
};

class VfSwitchTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // NPA_PLUGIN_PATH = <tests/plugins>/sub.
  void SetPluginDir(const char* sub);

  // Opens, configures (ring 256, offloads_) and starts a shell against the
  // test agent, with the loopback back end on its vhost-user socket.
  void OpenShell(uint32_t flags = 0);

  // Sends a VfOffer with one fd (a stand-in: the fake device answers for
  // it) and returns the shell's VfAccept.
  control::VfAccept Offer(uint64_t id, uint32_t ven, uint32_t dev, bool with_fd = true);
  control::RevokeDone Revoke(uint64_t id, uint32_t timeout_ms);
  control::RevokeDone ExpectRevokeDone();
  // n planned attach/revoke cycles with offer ids first.., under the
  // guest's traffic: each waits for 3000 more frames on the emulated path,
  // attaches, runs `on_vf` (if any), waits for 3000 on the VF and revokes,
  // expecting no TX frame lost. Fatal failures end it early.
  void CycleVfs(uint64_t first, uint64_t n, const std::function<void()>& on_vf = {});
  npa_shell_info Info();
  // The next PATH_CHANGED event, if one arrives within ms.
  bool NextPathEvent(npa_event* ev, int ms);
  void DrainEvents();

  std::string dir_, path_;
  std::shared_ptr<FakeVfioShared> shared_;
  bool lie_about_device_ = false;
  uint64_t offloads_ = NPA_OFFLOAD_TX_CSUM;  // what OpenShell configures
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<LoopbackBackend> backend_;
  npa_shell* sh_ = nullptr;
  std::unique_ptr<Guest> guest_;  // finished by TearDown before the shell closes

 private:
  template <typename T>
  T ExpectBody(bool (*has)(const control::Envelope&), T (*get)(const control::Envelope&));
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_VF_SWITCH_FIXTURE_H_
