// shell/shell_impl.h — the state behind the opaque npa_shell handle.
// Internal: only shell.cc and tests include it.
#ifndef NPA_SHELL_SHELL_IMPL_H_
#define NPA_SHELL_SHELL_IMPL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "npa/shell.h"
#include "shell/buf_pool.h"
#include "shell/control_client.h"
#include "shell/emulated_path.h"
#include "shell/event_queue.h"
#include "shell/path.h"
#include "shell/region.h"
#include "shell/vhost_user_frontend.h"

namespace npa::shell {

// One queue pair. The first cache line is all the fast path reads: the ops
// in use and the "switch pending" flag. A control thread stages new ops in
// `staged` (under stage_mu) and raises `switch_pending` (release); the owning
// thread applies them at its next burst and clears the flag (its ack).
struct alignas(64) QueueState {
  QueueOps ops;                              // owner thread only
  std::atomic<uint32_t> switch_pending{0};
  BufPool pool;                              // owner thread only
  QueueCounters c;
  std::mutex stage_mu;
  QueueOps staged;
  UniqueFd intr_ep;                          // epoll fd the application sees
  int intr_src = -1;                         // eventfd currently inside intr_ep
  bool intr_enabled = false;

  void ApplySwitch();
};

enum class ShellState { kOpen, kConfigured, kStarted, kStopped };

}  // namespace npa::shell

struct npa_shell {
  std::mutex mu;  // control calls
  npa::shell::ShellState state = npa::shell::ShellState::kOpen;
  uint32_t flags = 0;
  int timeout_ms = 5000;
  std::string name;
  uint8_t mac[6] = {};
  uint16_t mtu = 1500;
  std::unique_ptr<npa::shell::ControlClient> control;
  std::unique_ptr<npa::shell::VhostUserFrontend> fe;
  npa::shell::EventQueue events;
  npa::shell::Region region;
  uint16_t nb_queue_pairs = 0;
  uint16_t ring_size = 0;
  uint64_t offloads = 0;
  std::unique_ptr<npa::shell::QueueState[]> queues;
  std::unique_ptr<npa::shell::EmulatedPath> emulated;
  npa::shell::Path* active = nullptr;
};

#endif  // NPA_SHELL_SHELL_IMPL_H_
