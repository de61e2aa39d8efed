// hypervisor/daemon/agent_events.h — npa-agent's one source of lifecycle
// events: a guest came up or went down, a VF was offered, accepted, revoked,
// reset or released, a guest fell back to the emulated path, a migration
// ended. Each event gets a sequence number (1, 2, ... per publisher, no gaps),
// the monotonic time and the wall-clock time, the guest (id and name) and the
// VF's PCI address when one concerns it, and a duration for the kinds that
// end something (revoke_done, migration_out, migration_in).
//
//   AgentEvents events;                                  // keeps the last 256
//   // the control thread, where a lifecycle table decided the step:
//   events.Publish({.kind = EventKind::kRevokeDone, .guest_id = g.id,
//                   .guest = g.name, .vf = bdf, .duration_ns = took,
//                   .detail = "planned"});
//   // a metrics exporter (any thread; called synchronously by Publish, so
//   // it must only count, never block or publish itself):
//   events.AddListener([&](const AgentEvent& e) {
//     if (e.kind == EventKind::kRevokeDone) revoke_hist.Observe(e.duration_ns / 1e9);
//   });
//   // npactl events --follow (admin_service.h): a bounded queue
//   std::shared_ptr<EventSubscription> sub = events.Subscribe(1024);
//   std::vector<AgentEvent> got;
//   uint64_t missed = sub->Take(&got);   // oldest lost first when it overflowed
//   std::vector<AgentEvent> recent = events.Recent();  // npactl events
//
// Bounds (nothing here can make the agent wait or grow without limit):
//   - the history ring keeps the last `history` events (Recent());
//   - a subscription holds at most its capacity; when a Publish finds it
//     full, the oldest event is dropped and counted, and the next Take()
//     returns that count (then starts counting again), so a slow reader
//     learns exactly how many it missed and never holds the publisher up;
//   - listeners run inside Publish: they must be short and must not call
//     back into this object.
//
// Threads: every method is thread-safe (one mutex; events are control-plane
// rare, never per frame). Publish may be called from any thread; listeners
// run on the publishing thread with the mutex NOT held.
// Ownership: a subscription is shared between the publisher and its reader;
// it stops receiving once the reader drops its last reference (the publisher
// keeps only a weak_ptr). Listeners must outlive the AgentEvents object (or
// the last Publish).
#ifndef NPA_HYPERVISOR_DAEMON_AGENT_EVENTS_H_
#define NPA_HYPERVISOR_DAEMON_AGENT_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace npa::agent {

enum class EventKind : uint8_t {
  kGuestUp,        // the guest reached RUNNING (the dataplane polls it)
  kGuestDown,      // the guest was closed (detail: why)
  kVfAttach,       // a VF was offered to the guest (VfOffer sent)
  kVfAccept,       // the guest accepted it: it runs on the VF
  kRevokeBegin,    // a revoke started (detail: "planned" or "forced")
  kRevokeDone,     // the guest is off the VF (duration: since RevokeBegin)
  kFallback,       // the guest is back on the emulated path
  kVfReset,        // the VF was reset (VFIO_DEVICE_RESET)
  kVfReleased,     // the VF went back to the pool (FREE)
  kMigrationOut,   // this agent's side of a move ended (detail: outcome)
  kMigrationIn,    // a guest arrived here by migration and runs
};

// "guest_up", "guest_down", "vf_attach", "vf_accept", "revoke_begin",
// "revoke_done", "fallback", "vf_reset", "vf_released", "migration_out",
// "migration_in": the stable names npactl and the JSON lines use.
const char* EventKindName(EventKind k);

struct AgentEvent {
  uint64_t seq = 0;          // set by Publish
  uint64_t mono_ns = 0;      // set by Publish (npa::MonotonicNs)
  uint64_t unix_ms = 0;      // set by Publish (CLOCK_REALTIME, for people)
  EventKind kind = EventKind::kGuestUp;
  uint64_t guest_id = 0;     // 0: no guest concerned
  std::string guest;         // "" : no guest concerned
  std::string vf;            // PCI address, "" if no VF concerned
  uint64_t duration_ns = 0;  // revoke_done, migration_*: how long it took
  std::string detail;        // why / outcome, free text
};

// One reader's bounded queue (see the file comment).
class EventSubscription {
 public:
  explicit EventSubscription(size_t capacity) : capacity_(capacity ? capacity : 1) {}
  // Moves every queued event into *out (appended, in sequence order) and
  // returns how many were dropped for lack of room since the last Take.
  uint64_t Take(std::vector<AgentEvent>* out);
  size_t capacity() const { return capacity_; }

 private:
  friend class AgentEvents;
  void Push(const AgentEvent& e);  // drops the oldest when full

  const size_t capacity_;
  std::mutex mu_;
  std::deque<AgentEvent> q_;
  uint64_t missed_ = 0;
};

class AgentEvents {
 public:
  using Listener = std::function<void(const AgentEvent&)>;

  explicit AgentEvents(size_t history = 256);
  AgentEvents(const AgentEvents&) = delete;
  AgentEvents& operator=(const AgentEvents&) = delete;

  // Stamps seq and times, keeps it in the history, queues it for every live
  // subscription and calls every listener. Returns the sequence number.
  uint64_t Publish(AgentEvent e);
  // A new reader of every event published from now on.
  std::shared_ptr<EventSubscription> Subscribe(size_t capacity);
  // Called for every event from now on (see the file comment's rules).
  void AddListener(Listener l);
  // The events in the history ring, oldest first.
  std::vector<AgentEvent> Recent() const;
  // The last sequence number given (0: none yet).
  uint64_t last_seq() const;

 private:
  const size_t history_;
  mutable std::mutex mu_;
  uint64_t seq_ = 0;
  std::deque<AgentEvent> ring_;
  std::vector<std::weak_ptr<EventSubscription>> subs_;
  std::vector<std::shared_ptr<Listener>> listeners_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_AGENT_EVENTS_H_
