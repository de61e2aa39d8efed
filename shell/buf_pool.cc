#include "shell/buf_pool.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace npa::shell {

absl::Status BufPool::Init(uint8_t* slots, uint32_t count, uint32_t pool_id, uint32_t capacity,
                           uintptr_t lo, uintptr_t hi) {
  if (slots == nullptr || count == 0 || capacity < count)
    return absl::InvalidArgumentError(
        absl::StrCat("buffer pool ", pool_id, ": ", count, " slots, capacity ", capacity));
  if (reinterpret_cast<uintptr_t>(slots) % 64 != 0)
    return absl::InvalidArgumentError("buffer pool slots must be 64-byte aligned");
  stack_ = std::make_unique<npa_buf*[]>(capacity);
  capacity_ = capacity;
  count_ = count;
  lo_ = lo;
  hi_ = hi;
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
    stack_[top_++] = b;
  }
  return absl::OkStatus();
}

}  // namespace npa::shell
