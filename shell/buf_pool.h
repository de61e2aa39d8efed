// shell/buf_pool.h — fixed-size packet buffers for one queue pair.
//
//   BufPool pool;
//   NPA_RETURN_IF_ERROR(pool.Init(region.base() + off, 4096, /*pool_id=*/q, capacity, ...));
//   npa_buf* b[32];
//   uint32_t n = pool.Alloc(b, 32);     // headers reset for the application
//   pool.Free(b, n);                    // frees every segment of each frame
//
// A LIFO stack of npa_buf pointers: the most recently freed (cache-hot) slot
// is handed out first. Owner thread only: no locks, no atomics, no per-packet
// allocation and no reference counts (docs/architecture.md, "Data path").
//
// Buffers of one shell may be freed on any of its queues (buf.h), so the stack
// can hold `capacity` pointers, normally every buffer of the shell. A pointer
// outside [lo, hi) (not a slot of this shell) is never stacked; it is counted
// in bad_frees() instead, so a stray pointer cannot corrupt a pool.
#ifndef NPA_SHELL_BUF_POOL_H_
#define NPA_SHELL_BUF_POOL_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "npa/buf.h"

namespace npa::shell {

class BufPool {
 public:
  // slots: `count` slots of NPA_BUF_SLOT_SIZE bytes, 64-byte aligned.
  // [lo, hi): the address range of every slot of the shell (all pools).
  absl::Status Init(uint8_t* slots, uint32_t count, uint32_t pool_id, uint32_t capacity,
                    uintptr_t lo, uintptr_t hi);

  // Up to n buffers with their header reset (data_off, lengths, next,
  // nb_segs, ol_flags). Returns how many.
  uint32_t Alloc(npa_buf** bufs, uint32_t n) {
    uint32_t k = n < top_ ? n : top_;
    for (uint32_t i = 0; i < k; i++) {
      npa_buf* b = stack_[--top_];
      ResetHeader(b);
      bufs[i] = b;
    }
    return k;
  }
  // As Alloc, but leaves the header as it is: for RX refills, where the
  // receive path writes every field the application reads.
  uint32_t AllocRaw(npa_buf** bufs, uint32_t n) {
    uint32_t k = n < top_ ? n : top_;
    top_ -= k;
    for (uint32_t i = 0; i < k; i++) bufs[i] = stack_[top_ + i];
    return k;
  }
  // One buffer, one segment (no chain walk): for the TX completion path.
  void FreeSeg(npa_buf* b) {
    if (__builtin_expect(!Owns(b) || top_ >= capacity_, 0)) {
      bad_frees_++;
      return;
    }
    stack_[top_++] = b;
  }
  // Frees n frames with all their segments.
  void Free(npa_buf* const* bufs, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) FreeFrame(bufs[i]);
  }
  void FreeFrame(npa_buf* b) {
    // A chain cannot be longer than the shell has buffers: bound the walk so
    // a corrupted (cyclic) next pointer cannot loop forever.
    for (uint32_t guard = 0; b != nullptr && guard <= capacity_; guard++) {
      npa_buf* next = b->next;
      FreeSeg(b);
      b = next;
    }
  }

  uint32_t available() const { return top_; }
  uint32_t count() const { return count_; }
  uint64_t bad_frees() const { return bad_frees_; }
  bool Owns(const npa_buf* b) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(b);
    return a - lo_ < hi_ - lo_;
  }

  static void ResetHeader(npa_buf* b) {
    b->next = nullptr;
    b->pkt_len = 0;
    b->data_len = 0;
    b->data_off = NPA_BUF_DATA_OFF;
    b->nb_segs = 1;
    b->ol_flags = 0;
  }

 private:
  std::unique_ptr<npa_buf*[]> stack_;
  uint32_t top_ = 0;
  uint32_t capacity_ = 0;
  uint32_t count_ = 0;
  uintptr_t lo_ = 0, hi_ = 0;
  uint64_t bad_frees_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_BUF_POOL_H_
