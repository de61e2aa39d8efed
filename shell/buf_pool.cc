#include "shell/buf_pool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"

namespace npa::shell {

std::shared_ptr<SlotStates> SlotStates::ForRange(uintptr_t lo, uint64_t nslots) {
  // Every pool of one shell is initialised with the same range (shell.cc):
  // they find one another here, so a buffer freed on another queue is still
  // known. Weak references: the map goes with the shell's last pool.
  static std::mutex mu;
  static std::map<std::pair<uintptr_t, uint64_t>, std::weak_ptr<SlotStates>> live;
  std::lock_guard<std::mutex> l(mu);
  for (auto it = live.begin(); it != live.end();) {
    if (it->second.expired()) it = live.erase(it);
    else ++it;
  }
  auto& w = live[{lo, nslots}];
  std::shared_ptr<SlotStates> s = w.lock();
  if (!s) {
    s = std::make_shared<SlotStates>(lo, nslots);
    w = s;
  }
  return s;
}

absl::Status BufPool::Init(uint8_t* slots, uint32_t count, uint32_t pool_id, uint32_t capacity,
                           uintptr_t lo, uintptr_t hi) {
  if (slots == nullptr || count == 0 || capacity < count)
    return absl::InvalidArgumentError(
        absl::StrCat("buffer pool ", pool_id, ": ", count, " slots, capacity ", capacity));
  if (reinterpret_cast<uintptr_t>(slots) % 64 != 0)
    return absl::InvalidArgumentError("buffer pool slots must be 64-byte aligned");
  const uintptr_t first = reinterpret_cast<uintptr_t>(slots);
  const uint64_t nslots = hi > lo ? (hi - lo) / NPA_BUF_SLOT_SIZE : 0;
  if (first < lo || (first - lo) % NPA_BUF_SLOT_SIZE != 0 ||
      (first - lo) / NPA_BUF_SLOT_SIZE + count > nslots)
    return absl::InvalidArgumentError(absl::StrCat(
        "buffer pool ", pool_id, ": ", count, " slots at 0x", absl::Hex(first),
        " are not slots of the range [0x", absl::Hex(lo), ", 0x", absl::Hex(hi), ")"));
  if (nslots >= SlotStates::kMaxSlots || nslots > UINT32_MAX)
    return absl::InvalidArgumentError(absl::StrCat("buffer pool ", pool_id, ": a range of ",
                                                   nslots, " slots is too large"));
  // Room for every slot of the range: a slot is stacked only while its state
  // byte says free, so no stack can overflow and FreeSeg need not check.
  capacity = std::max<uint32_t>(capacity, static_cast<uint32_t>(nslots));
  stack_ = std::make_unique<npa_buf*[]>(capacity);
  capacity_ = capacity;
  count_ = count;
  lo_ = lo;
  hi_ = hi;
  states_ = SlotStates::ForRange(lo, nslots);
  st_ = states_->data();
  st_lo_ = lo;
  st_n_ = nslots;
  // Stack the slots so that slot 0 is handed out first.
  top_ = 0;
  for (uint32_t i = count; i-- > 0;) {
    auto* b = reinterpret_cast<npa_buf*>(slots + static_cast<size_t>(i) * NPA_BUF_SLOT_SIZE);
    memset(b, 0, sizeof *b);
    b->iova = reinterpret_cast<uintptr_t>(b);
    b->buf_len = NPA_BUF_SLOT_SIZE;
    b->data_off = NPA_BUF_DATA_OFF;
    b->nb_segs = 1;
    b->slot = i;
    b->pool_id = pool_id;
    states_->Set(states_->IndexOf(b), SlotStates::kFree);
    stack_[top_++] = b;
  }
  return absl::OkStatus();
}

}  // namespace npa::shell
