// shell/event_queue.h — npa_event queue with an eventfd that is readable
// exactly while the queue is non-empty.
//
//   EventQueue q;  NPA_RETURN_IF_ERROR(q.Init());
//   q.Push(NPA_EVENT_LINK_CHANGED, ev_fill_fn);  // any thread
//   poll(q.fd()); npa_event e; q.Pop(&e);
#ifndef NPA_SHELL_EVENT_QUEUE_H_
#define NPA_SHELL_EVENT_QUEUE_H_

#include <deque>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "npa/shell.h"

namespace npa::shell {

class EventQueue {
 public:
  static constexpr size_t kMaxQueued = 1024;  // oldest dropped beyond this

  absl::Status Init();
  int fd() const { return fd_.get(); }
  // detail is truncated to fit npa_event.detail.
  void Push(npa_event_type type, uint32_t value, std::string_view detail);
  // 1 and *out filled, or 0 when empty. out->struct_size must be >= the
  // fields it wants; we fill min(out->struct_size, sizeof(npa_event)).
  int Pop(npa_event* out);
  uint64_t dropped() const;

 private:
  mutable std::mutex mu_;
  std::deque<npa_event> q_;
  UniqueFd fd_;
  uint64_t dropped_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_EVENT_QUEUE_H_
