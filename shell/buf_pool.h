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
// can hold `capacity` pointers, normally every buffer of the shell.
//
// Nothing read back from shared memory is trusted (docs/architecture.md,
// "Memory"; issue 9): a buffer pointer that a back end, a device or a
// plug-in hands back, and every `next` pointer of a chain (the header sits in
// the shared slot), is checked before it is stacked. A freed pointer must be
//   - a slot start of this shell: lo + k * NPA_BUF_SLOT_SIZE inside [lo, hi),
//   - of a slot some pool of the shell was given (not the tail of the range),
//   - out of the pools (allocated), not already free.
// Anything else is counted in bad_frees() and dropped; a frame's walk stops
// at its first bad segment, whose `next` is not followed. So a double free
// never stacks a slot twice and a corrupted `next` can never put a foreign,
// misaligned or free buffer on a free list.
//
// The allocated/free state lives in private memory (SlotStates, one byte per
// slot), never in the shared slot, and is shared by every pool initialised
// with the same [lo, hi): a shell's queues, so a buffer freed on another
// queue than the one it came from is still known. One byte per slot (a load
// and a store per buffer, relaxed atomics: plain moves on x86) keeps the
// check to a few instructions: SlotStates::IndexOf turns a pointer into a
// slot index that is below nslots exactly when the pointer is a slot start
// inside the range (rotate, multiply, one compare; see there), so a free is
// one compare of the index and one of the state byte. A stack cannot
// overflow: it holds at least every slot of the range, and a slot is on a
// stack only while its byte says kFree, which only one free can make it.
//
// The stash (shell_impl.h, shell/vf/shell_buffers.h) is a second free list,
// kept by the control path under a lock: its buffers are kStashed, so a
// buffer is on a stack or in a stash, never both, and never twice in either.
//   AllocStashed/FreeStashed: the owner moves buffers between its stack and
//     the stash (kFree <-> kStashed);
//   StashSeg/UnstashSeg: the control path puts a freed buffer into the stash
//     (kOut -> kStashed; anything else is refused for the caller to count)
//     and takes one out (-> kOut).
//
// Threads: each pool has one owner. Two owners touch the same state byte
// only for a buffer passed between their queues, which the application
// orders (buf.h); relaxed atomics keep that free of data races.
#ifndef NPA_SHELL_BUF_POOL_H_
#define NPA_SHELL_BUF_POOL_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "npa/buf.h"

namespace npa::shell {

// The allocated/free state of every slot in one shell's slot range, private
// to the shell. Shared (shared_ptr) by the pools with that range; see above.
class SlotStates {
 public:
  enum : uint8_t { kNotASlot = 0, kFree = 1, kOut = 2, kStashed = 3 };
  // NPA_BUF_SLOT_SIZE is 128 * 17, and 17 is odd, so it has an inverse
  // modulo 2^64: a slot start's offset from lo is off = 128 * 17 * i, and
  // rotr(off, 7) * kInverse17 is exactly i. For any other offset (or an
  // address below lo, wrapped) the result is at least nslots:
  //   - low 7 bits not all 0: the rotate puts them in bits 57..63, so the
  //     rotated value x is >= 2^57 > 17 * nslots, and x * kInverse17 == i
  //     with i < nslots would need x == 17 * i < 17 * nslots;
  //   - low bits 0 but off / 128 not 17 * i for an i < nslots: likewise.
  // One rotate, one multiply and one compare check alignment, range and slot
  // boundary together (the check BufPool::FreeSeg and Held run per buffer).
  static constexpr uint64_t kInverse17 = 0xf0f0f0f0f0f0f0f1ull;
  static_assert(NPA_BUF_SLOT_SIZE == 17 * 128, "IndexOf() divides by 17 * 128");
  static_assert(kInverse17 * 17 == 1);
  // 17 * nslots < 2^57, see above (2^52 slots of 2 KiB: far beyond memory).
  static constexpr uint64_t kMaxSlots = uint64_t{1} << 52;

  SlotStates(uintptr_t lo, uint64_t nslots)
      : lo_(lo), nslots_(nslots < kMaxSlots ? nslots : 0), st_(new std::atomic<uint8_t>[nslots_]) {
    for (uint64_t i = 0; i < nslots_; i++) st_[i].store(kNotASlot, std::memory_order_relaxed);
  }
  // The slot index of b: < nslots() exactly when b is a slot start inside
  // the range (see above).
  static uint64_t IndexOf(uintptr_t lo, const npa_buf* b) {
    const uint64_t off = reinterpret_cast<uintptr_t>(b) - lo;
    return ((off >> 7) | (off << 57)) * kInverse17;  // rotr(off, 7): one ror
  }
  uint64_t IndexOf(const npa_buf* b) const { return IndexOf(lo_, b); }
  // True and *i = the slot index when b is a slot start inside the range.
  bool Index(const npa_buf* b, uint64_t* i) const {
    *i = IndexOf(b);
    return *i < nslots_;
  }
  uint8_t Get(uint64_t i) const { return st_[i].load(std::memory_order_relaxed); }
  void Set(uint64_t i, uint8_t v) { st_[i].store(v, std::memory_order_relaxed); }
  uintptr_t lo() const { return lo_; }
  uint64_t nslots() const { return nslots_; }
  std::atomic<uint8_t>* data() const { return st_.get(); }

  // The states of the range [lo, lo + nslots * slot): the existing map when a
  // live pool already uses exactly this range, else a new one (all
  // kNotASlot). Control path (a mutex).
  static std::shared_ptr<SlotStates> ForRange(uintptr_t lo, uint64_t nslots);

 private:
  const uintptr_t lo_;
  const uint64_t nslots_;
  std::unique_ptr<std::atomic<uint8_t>[]> st_;
};

class BufPool {
 public:
  // slots: `count` slots of NPA_BUF_SLOT_SIZE bytes, 64-byte aligned.
  // [lo, hi): the address range of every slot of the shell (all pools); the
  // slots must lie inside it at a multiple of NPA_BUF_SLOT_SIZE from lo.
  absl::Status Init(uint8_t* slots, uint32_t count, uint32_t pool_id, uint32_t capacity,
                    uintptr_t lo, uintptr_t hi);

  // Up to n buffers with their header reset (data_off, lengths, next,
  // nb_segs, ol_flags). Returns how many.
  uint32_t Alloc(npa_buf** bufs, uint32_t n) {
    uint32_t k = n < top_ ? n : top_;
    for (uint32_t i = 0; i < k; i++) {
      npa_buf* b = stack_[--top_];
      Mark(b, SlotStates::kOut);
      ResetHeader(b);
      bufs[i] = b;
    }
    return k;
  }
  // As Alloc, but leaves the header as it is: for RX refills, where the
  // receive path writes every field the application reads.
  uint32_t AllocRaw(npa_buf** bufs, uint32_t n) { return AllocMarked(bufs, n, SlotStates::kOut); }
  // One buffer, one segment (no chain walk): for the TX completion path.
  // False (counted in bad_frees, nothing stacked): not a slot of the shell,
  // not at a slot start, or not out of the pools (free, or in a stash).
  bool FreeSeg(npa_buf* b) {
    const uint64_t i = SlotStates::IndexOf(st_lo_, b);
    // Slot start, inside, allocated: two predicted branches. No stack bound:
    // the stack holds every slot of the range (Init), each at most once.
    if (__builtin_expect(i >= st_n_, 0) ||
        __builtin_expect(st_[i].load(std::memory_order_relaxed) != SlotStates::kOut, 0)) {
      bad_frees_++;
      return false;
    }
    st_[i].store(SlotStates::kFree, std::memory_order_relaxed);
    stack_[top_++] = b;
    return true;
  }

  // The stash (see the header comment). Owner thread: up to n buffers off
  // the stack into the stash (their headers as they are).
  uint32_t AllocStashed(npa_buf** bufs, uint32_t n) {
    return AllocMarked(bufs, n, SlotStates::kStashed);
  }
  // Owner thread: a stash entry back onto the stack. False (counted in
  // bad_frees, nothing stacked) unless b is a slot of the shell in a stash.
  bool FreeStashed(npa_buf* b) {
    const uint64_t i = SlotStates::IndexOf(st_lo_, b);
    if (i >= st_n_ || st_[i].load(std::memory_order_relaxed) != SlotStates::kStashed) {
      bad_frees_++;
      return false;
    }
    st_[i].store(SlotStates::kFree, std::memory_order_relaxed);
    stack_[top_++] = b;
    return true;
  }
  // Control path (under the stash's lock): b, freed, goes into the stash.
  // False (the caller counts it; b must not be stashed) unless b is a slot
  // of the shell that is out of the pools: a buffer freed twice is refused
  // the second time. An atomic exchange of the state, so two frees of one
  // buffer on two control paths cannot both succeed.
  bool StashSeg(const npa_buf* b) {
    const uint64_t i = SlotStates::IndexOf(st_lo_, b);
    if (i >= st_n_) return false;
    uint8_t want = SlotStates::kOut;
    return st_[i].compare_exchange_strong(want, SlotStates::kStashed, std::memory_order_relaxed);
  }
  // Control path: b, taken from the stash, is out of the pools again.
  void UnstashSeg(const npa_buf* b) { Mark(b, SlotStates::kOut); }

  // Frees n frames with all their segments.
  void Free(npa_buf* const* bufs, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) FreeFrame(bufs[i]);
  }
  void FreeFrame(npa_buf* b) {
    // A chain cannot be longer than the shell has buffers: bound the walk so
    // a corrupted (cyclic) next pointer cannot loop forever. A bad segment
    // ends the walk: its `next` is nobody's to follow (it may be a free
    // slot's stale link or a pointer a back end wrote).
    // b->next is read only once b passed the checks: a wild `next` a back
    // end wrote is refused, never dereferenced.
    // The one-segment frame (nearly every one) pays no loop: the walk is
    // out of line.
    if (__builtin_expect(b == nullptr, 0) || !FreeSeg(b)) return;
    npa_buf* next = b->next;
    if (__builtin_expect(next != nullptr, 0)) FreeChain(next);
  }
  // The rest of a chain, from its second segment.
  __attribute__((noinline)) void FreeChain(npa_buf* b) {
    for (uint32_t guard = 1; b != nullptr && guard <= capacity_; guard++) {
      if (!FreeSeg(b)) return;
      b = b->next;
    }
  }

  uint32_t available() const { return top_; }
  uint32_t count() const { return count_; }
  uint64_t bad_frees() const { return bad_frees_; }
  // b's address is inside the shell's slot range (not necessarily a slot).
  bool Owns(const npa_buf* b) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(b);
    return a - lo_ < hi_ - lo_;
  }
  // b is a slot start of the shell that is out of the pools (the
  // application's, a ring's or a device's): the check for a pointer a
  // device or plug-in hands back as received. A few instructions.
  bool Held(const npa_buf* b) const {
    const uint64_t i = SlotStates::IndexOf(st_lo_, b);
    return i < st_n_ && st_[i].load(std::memory_order_relaxed) == SlotStates::kOut;
  }
  // Shared state map (tests, fuzzers).
  const SlotStates* states() const { return states_.get(); }

  // The state byte of a slot taken from the free stack or a stash (known
  // good: it passed the checks when it was freed).
  void Mark(const npa_buf* b, uint8_t v) {
    st_[SlotStates::IndexOf(st_lo_, b)].store(v, std::memory_order_relaxed);
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
  uint32_t AllocMarked(npa_buf** bufs, uint32_t n, uint8_t state) {
    uint32_t k = n < top_ ? n : top_;
    top_ -= k;
    for (uint32_t i = 0; i < k; i++) {
      npa_buf* b = stack_[top_ + i];
      Mark(b, state);
      bufs[i] = b;
    }
    return k;
  }

  std::unique_ptr<npa_buf*[]> stack_;
  uint32_t top_ = 0;
  uint32_t capacity_ = 0;  // the stack's size: >= every slot of the range
  uint32_t count_ = 0;
  uintptr_t lo_ = 0, hi_ = 0;
  uint64_t bad_frees_ = 0;
  // Never null: before Init, an empty map that refuses every pointer.
  std::shared_ptr<SlotStates> states_ = SlotStates::ForRange(0, 0);
  // states_'s hot fields, copied: no pointer chase per buffer.
  std::atomic<uint8_t>* st_ = states_->data();
  uintptr_t st_lo_ = 0;
  uint64_t st_n_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_BUF_POOL_H_
