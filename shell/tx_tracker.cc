#include "shell/tx_tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace npa::shell {

absl::Status TxTracker::Init(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo || (hi - lo) / NPA_BUF_SLOT_SIZE > (1u << 26))
    return absl::InvalidArgumentError(
        absl::StrCat("TX tracker: bad slot range [0x", absl::Hex(lo), ", 0x", absl::Hex(hi), ")"));
  lo_ = lo;
  span_ = hi - lo;
  bits_.assign((span_ / NPA_BUF_SLOT_SIZE + 63) / 64, 0);
  outstanding_ = 0;
  return absl::OkStatus();
}

uint64_t TxTracker::Reset() {
  const uint64_t n = outstanding_;
  std::fill(bits_.begin(), bits_.end(), 0);
  outstanding_ = 0;
  return n;
}

}  // namespace npa::shell
