// tests/support/loopback_backend.h — the far end of a shell's emulated path
// for tests: the agent's own vhost-user back end (hypervisor/vhost,
// VhostDevice) on the shell's socket, reflecting every frame the guest sends
// back into the same queue pair's RX ring.
//
//   auto b = LoopbackBackend::Create(std::move(agent->vhost_peer));
//   ASSERT_TRUE(b.ok()) << b.status();
//   ... the guest's npa_tx_burst frames come back through npa_rx_burst ...
//   (*b)->reflected();      // frames put back so far
//
// A thread serves the session (memory table, rings) and polls every ready
// queue pair, sleeping 50 us when idle; it stops when the object is
// destroyed, or serves no more messages once the front end closes (the
// rings are then left alone). A frame the RX ring has no room for is
// dropped by VhostDevice: keep fewer frames in flight than the ring size.
// reflected() may be read from any thread.
#ifndef NPA_TESTS_SUPPORT_LOOPBACK_BACKEND_H_
#define NPA_TESTS_SUPPORT_LOOPBACK_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vhost/vhost_device.h"

namespace npa::shell {

class LoopbackBackend {
 public:
  // conn: the back end's side of the vhost-user socket. name: the device's
  // name in the back end's logs.
  static absl::StatusOr<std::unique_ptr<LoopbackBackend>> Create(UniqueFd conn,
                                                                 std::string name = "loopback");
  ~LoopbackBackend();
  LoopbackBackend(const LoopbackBackend&) = delete;
  LoopbackBackend& operator=(const LoopbackBackend&) = delete;

  uint64_t reflected() const { return reflected_.load(std::memory_order_relaxed); }

 private:
  explicit LoopbackBackend(std::unique_ptr<agent::VhostDevice> dev);
  void Run();

  std::unique_ptr<agent::VhostDevice> dev_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> reflected_{0};
  std::thread thread_;  // last: started once the rest is constructed
};

}  // namespace npa::shell

#endif  // NPA_TESTS_SUPPORT_LOOPBACK_BACKEND_H_
