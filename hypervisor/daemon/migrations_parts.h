// hypervisor/daemon/migrations_parts.h — the records behind Migrations
// (migrations.h), shared by its two sources: migrations.cc (the source side,
// the worker, the posting) and migrations_dest.cc (the destination and
// Hello.resume). Not for other users.
#ifndef NPA_HYPERVISOR_DAEMON_MIGRATIONS_PARTS_H_
#define NPA_HYPERVISOR_DAEMON_MIGRATIONS_PARTS_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hypervisor/daemon/migrations.h"

namespace npa::agent {

// One source migration's blocking calls, in order, on its own thread. The
// peer lives on that thread only. Stop() drops what is queued (the call in
// progress ends at its own deadline); finished() once the thread is done.
class Migrations::Worker {
 public:
  using Job = std::function<void(std::unique_ptr<MigrationPeer>& peer)>;
  explicit Worker(std::string name);
  ~Worker();  // Stop + join
  void Post(Job job);
  void Stop();
  bool finished() const { return finished_.load(); }

 private:
  void Run();
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  std::atomic<bool> finished_{false};
  std::unique_ptr<MigrationPeer> peer_;
  std::thread thread_;
};

struct Migrations::Source {
  explicit Source(const std::string& guest) : m(guest) {}
  uint64_t id = 0;
  uint64_t guest_id = 0;
  std::string guest;
  std::string to;
  MacAddr mac{};
  migration::SourceMigration m;
  AdminWaiter waiter;
  bool waiter_live = true;           // npactl still waits for the reply
  bool want_progress = false;        // Migrate.progress: a reply per phase too
  bool finished = false;             // Finish ran: replied (if live) and hooks.done told
  uint64_t start_ns = 0;             // Start: hooks.done's duration
  uint32_t timeout_ms = 0;
  uint64_t deadline_ms = 0;          // until COMMITTED
  uint64_t prepare_deadline_ms = 0;  // STOPPING: MigrateReady by then
  std::vector<control::MigrationPhase> phases;
  std::string phase;                 // the one under way
  uint64_t phase_start_ns = 0;
  control::MigrationAccept accept;
  control::MigrationState state;
  bool holding = false;              // HoldMac on
  uint64_t grace_end_ms = 0, next_take_ms = 0, hold_end_ms = 0;
  bool late_last_sent = false;
  uint64_t late_sent = 0, late_lost = 0;  // frames forwarded to B / lost (exact)
  std::unique_ptr<Worker> worker;
};

struct Migrations::Dest {
  explicit Dest(const std::string& guest) : m(guest) {}
  uint64_t id = 0;
  uint64_t guest_id = 0;
  std::string peer;
  std::string ticket;                // kTicketLen random bytes
  control::MigrationState state;     // the offer's, then the commit's
  migration::DestMigration m;
  uint64_t hold_end_ms = 0;
  uint64_t reserved_ns = 0;          // MonotonicNs when the slot was reserved (the offer)
  std::vector<std::string> late;     // until the resume
  uint64_t late_received = 0, late_delivered = 0, late_lost = 0;
  bool late_last = false;
};

// Runs fn on the control thread (Post) and waits up to timeout_ms for it;
// on_timeout if it did not run in time (it may still run later).
template <typename T>
T Migrations::CallOnControl(std::function<T()> fn, int timeout_ms, T on_timeout) {
  auto p = std::make_shared<std::promise<T>>();
  std::future<T> f = p->get_future();
  Post([p, fn = std::move(fn)] { p->set_value(fn()); });
  if (f.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready)
    return on_timeout;
  return f.get();
}

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_MIGRATIONS_PARTS_H_
