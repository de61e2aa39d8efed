#include "shell/vf/shell_buffers.h"

#include <algorithm>
#include <mutex>

#include "shell/shell_impl.h"

namespace npa::shell {

// Defined before its callers so that they inline it.
inline void ShellBuffers::Release(QueueState& q, npa_buf** bufs, uint16_t n) {
  if (!in_control_call()) [[likely]] {
    q.pool.Free(bufs, n);
    return;
  }
  Stash(q, bufs, n);
}

uint16_t ShellBuffers::Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (qid >= nqp_) return 0;
  QueueState& q = queues_[qid];
  if (!in_control_call()) return static_cast<uint16_t>(q.pool.Alloc(bufs, n));
  std::lock_guard<std::mutex> l(q.stash_mu);
  uint16_t k = static_cast<uint16_t>(std::min<size_t>(n, q.stash.size()));
  for (uint16_t i = 0; i < k; i++) {
    bufs[i] = q.stash.back();
    q.stash.pop_back();
    q.pool.UnstashSeg(bufs[i]);
    BufPool::ResetHeader(bufs[i]);
  }
  return k;
}

void ShellBuffers::Free(uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (qid >= nqp_) return;
  QueueState& q = queues_[qid];
  // A TX frame coming back is a completion (or, at stop, a frame the VF
  // never sent: counted before stop, vf_switch.cc Release). The view is
  // empty for a counted plug-in, whose TX frames come through FreeTx.
  const TxTracker::View track = q.vf_tx.view();
  if (track.nslots != 0)
    for (uint16_t i = 0; i < n; i++) track.Clear(bufs[i]);
  Release(q, bufs, n);
}

void ShellBuffers::FreeTx(uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (qid >= nqp_) return;
  QueueState& q = queues_[qid];
  if (!q.vf_tx.counted()) {
    Free(qid, bufs, n);
    return;
  }
  // One subtraction per burst: the ~20 instructions per frame that marking
  // costs (docs/PERFORMANCE.md, "VF path dispatch").
  q.vf_tx.Completed(n);
  Release(q, bufs, n);
}

__attribute__((noinline)) void ShellBuffers::Stash(QueueState& q, npa_buf** bufs, uint16_t n) {
  std::lock_guard<std::mutex> l(q.stash_mu);
  for (uint16_t i = 0; i < n; i++) {
    // Every segment, bounded like BufPool::FreeFrame. A segment is checked
    // before its `next` is read (a plug-in may hand back a wild pointer, and
    // a bad segment's `next` is not to be trusted): the walk stops at the
    // first pointer that is not a buffer out of the pools, counted. StashSeg
    // moves its state to kStashed, so a buffer freed twice (or freed while
    // it sits in a stash or on a free stack) is refused, never stashed twice.
    npa_buf* b = bufs[i];
    for (uint32_t g = 0; b != nullptr && g <= q.pool.count() * nqp_; g++) {
      if (!q.pool.StashSeg(b)) {
        bad_frees_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      npa_buf* next = b->next;
      b->next = nullptr;
      q.stash.push_back(b);
      b = next;
    }
  }
}

}  // namespace npa::shell
