// shell/path.h — what a data path (emulated virtio ring, or a VF through a
// vendor plug-in) provides to the shell, and the per-queue fast-path table.
//
// The application's burst calls go through QueueOps, one cache-aligned entry
// per queue pair (habit 2, "fast path apart from control path"): two
// function pointers and their contexts, nothing else. A path switch rewrites
// a queue's QueueOps at a burst boundary, on the owning thread (see
// shell.cc), so the fast path never takes a lock.
#ifndef NPA_SHELL_PATH_H_
#define NPA_SHELL_PATH_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "npa/buf.h"
#include "npa/shell.h"

namespace npa::shell {

// Per-queue counters. Written only by the queue's owning thread, read by any
// thread: relaxed atomics, incremented with load+store (no locked RMW, since
// there is a single writer).
struct alignas(64) QueueCounters {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
  std::atomic<uint64_t> rx_dropped{0}, tx_full{0};
  std::atomic<uint64_t> rx_emulated{0}, tx_emulated{0}, rx_vf{0}, tx_vf{0};
  std::atomic<uint64_t> kicks{0}, interrupts{0};
  std::atomic<uint64_t> tx_bad{0};  // frames dropped: offload impossible / bad offsets
  std::atomic<uint64_t> rx_bad{0};  // used entries rejected from the device

  static void Add(std::atomic<uint64_t>& c, uint64_t v) {
    c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
};

using BurstFn = uint16_t (*)(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c);

struct alignas(64) QueueOps {
  BurstFn rx = nullptr;
  BurstFn tx = nullptr;
  void* rx_ctx = nullptr;
  void* tx_ctx = nullptr;
};

// A data path. Control-side calls happen under the shell's control lock;
// only ops() results are used from the queues' owning threads.
class Path {
 public:
  virtual ~Path() = default;
  virtual npa_path kind() const = 0;
  // Offloads this path can provide (hardware, or software in the shell).
  virtual uint64_t offloads() const = 0;
  virtual absl::Status Start() = 0;
  virtual absl::Status Stop() = 0;
  virtual QueueOps ops(uint16_t qid) = 0;
  // The eventfd that signals RX work for qid in interrupt mode.
  virtual int intr_eventfd(uint16_t qid) const = 0;
  // Ask the device for (or suppress) RX interrupts on qid.
  virtual void SetInterrupt(uint16_t qid, bool enable) = 0;
  virtual bool link_up() const = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_PATH_H_
