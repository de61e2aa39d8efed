#include "shell/event_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/status_macros.h"

namespace npa::shell {

absl::Status EventQueue::Init() {
  fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd_) return ErrnoError(errno, "eventfd for shell events");
  return absl::OkStatus();
}

void EventQueue::Push(npa_event_type type, uint32_t value, std::string_view detail) {
  npa_event e{};
  e.struct_size = sizeof e;
  e.type = type;
  e.timestamp_ns = MonotonicNs();
  switch (type) {
    case NPA_EVENT_PATH_CHANGED: e.u.path = static_cast<npa_path>(value); break;
    case NPA_EVENT_LINK_CHANGED: e.u.link_up = value; break;
    case NPA_EVENT_ERROR: e.u.error = static_cast<int32_t>(value); break;
    default: break;
  }
  size_t n = std::min(detail.size(), sizeof e.detail - 1);
  memcpy(e.detail, detail.data(), n);
  e.detail[n] = '\0';
  std::lock_guard<std::mutex> l(mu_);
  if (q_.size() >= kMaxQueued) {
    q_.pop_front();
    dropped_++;
  }
  q_.push_back(e);
  uint64_t one = 1;
  ssize_t r = ::write(fd_.get(), &one, sizeof one);
  (void)r;  // only readability matters; a saturated counter stays readable
}

int EventQueue::Pop(npa_event* out) {
  std::lock_guard<std::mutex> l(mu_);
  if (q_.empty()) return 0;
  npa_event e = q_.front();
  q_.pop_front();
  if (q_.empty()) {
    // Under the lock: keep "fd readable <=> queue non-empty".
    uint64_t v;
    ssize_t r = ::read(fd_.get(), &v, sizeof v);
    (void)r;
  }
  size_t n = std::min<size_t>(out->struct_size, sizeof e);
  e.struct_size = static_cast<uint32_t>(n);
  memcpy(out, &e, n);
  return 1;
}

uint64_t EventQueue::dropped() const {
  std::lock_guard<std::mutex> l(mu_);
  return dropped_;
}

}  // namespace npa::shell
