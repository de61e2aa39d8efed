#include "shell/vf/drain_grace.h"

#include <algorithm>

namespace npa::shell {

DrainGrace::DrainGrace(uint16_t queues, uint64_t start_ns, Options o)
    : o_(o), start_ns_(start_ns), q_(queues) {}

bool DrainGrace::Drained(uint16_t q, uint64_t rx_vf, bool empty_burst_seen, uint64_t now_ns) {
  if (q >= q_.size()) return true;
  Q& s = q_[q];
  if (!s.seen) {
    s = Q{true, rx_vf, rx_vf, start_ns_};
  } else if (rx_vf != s.last) {
    s.last = rx_vf;
    s.last_change_ns = now_ns;
  }
  if (!empty_burst_seen) return false;
  return now_ns >= start_ns_ + o_.grace_ns || now_ns - std::min(now_ns, s.last_change_ns) >= o_.quiet_ns;
}

uint64_t DrainGrace::frames() const {
  uint64_t n = 0;
  for (const Q& s : q_) n += s.last - s.base;
  return n;
}

}  // namespace npa::shell
