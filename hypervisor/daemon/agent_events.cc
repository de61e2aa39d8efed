#include "hypervisor/daemon/agent_events.h"

#include <time.h>

#include "common/clock.h"

namespace npa::agent {

const char* EventKindName(EventKind k) {
  switch (k) {
    case EventKind::kGuestUp: return "guest_up";
    case EventKind::kGuestDown: return "guest_down";
    case EventKind::kVfAttach: return "vf_attach";
    case EventKind::kVfAccept: return "vf_accept";
    case EventKind::kRevokeBegin: return "revoke_begin";
    case EventKind::kRevokeDone: return "revoke_done";
    case EventKind::kFallback: return "fallback";
    case EventKind::kVfReset: return "vf_reset";
    case EventKind::kVfReleased: return "vf_released";
    case EventKind::kMigrationOut: return "migration_out";
    case EventKind::kMigrationIn: return "migration_in";
  }
  return "unknown";
}

void EventSubscription::Push(const AgentEvent& e) {
  std::lock_guard<std::mutex> l(mu_);
  if (q_.size() >= capacity_) {
    q_.pop_front();  // the oldest goes: the reader learns how many by Take
    missed_++;
  }
  q_.push_back(e);
}

uint64_t EventSubscription::Take(std::vector<AgentEvent>* out) {
  std::lock_guard<std::mutex> l(mu_);
  for (AgentEvent& e : q_) out->push_back(std::move(e));
  q_.clear();
  const uint64_t m = missed_;
  missed_ = 0;
  return m;
}

AgentEvents::AgentEvents(size_t history) : history_(history ? history : 1) {}

uint64_t AgentEvents::Publish(AgentEvent e) {
  std::vector<std::shared_ptr<EventSubscription>> subs;
  std::vector<std::shared_ptr<Listener>> listeners;
  {
    std::lock_guard<std::mutex> l(mu_);
    e.seq = ++seq_;
    e.mono_ns = MonotonicNs();
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e.unix_ms = static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
    if (ring_.size() >= history_) ring_.pop_front();
    ring_.push_back(e);
    // Under the same lock as the seq, so every subscription sees the events
    // in sequence order even with publishers on several threads.
    for (size_t i = 0; i < subs_.size();) {
      if (auto s = subs_[i].lock()) {
        s->Push(e);
        i++;
      } else {
        subs_[i] = std::move(subs_.back());  // its reader left
        subs_.pop_back();
      }
    }
    listeners = listeners_;
  }
  for (const auto& fn : listeners) (*fn)(e);
  return e.seq;
}

std::shared_ptr<EventSubscription> AgentEvents::Subscribe(size_t capacity) {
  auto s = std::make_shared<EventSubscription>(capacity);
  std::lock_guard<std::mutex> l(mu_);
  subs_.push_back(s);
  return s;
}

void AgentEvents::AddListener(Listener fn) {
  std::lock_guard<std::mutex> l(mu_);
  listeners_.push_back(std::make_shared<Listener>(std::move(fn)));
}

std::vector<AgentEvent> AgentEvents::Recent() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::vector<AgentEvent>(ring_.begin(), ring_.end());
}

uint64_t AgentEvents::last_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return seq_;
}

}  // namespace npa::agent
