#include "shell/vf/tx_tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace npa::shell {

absl::Status TxTracker::Init(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo || (hi - lo) / NPA_BUF_SLOT_SIZE > (1u << 26))
    return absl::InvalidArgumentError(
        absl::StrCat("TX tracker: bad slot range [0x", absl::Hex(lo), ", 0x", absl::Hex(hi), ")"));
  lo_ = lo;
  nslots_ = (hi - lo) / NPA_BUF_SLOT_SIZE;
  marks_.assign(nslots_, 0);
  return absl::OkStatus();
}

bool TxTracker::Clear(const npa_buf* b) {
  View v = view();
  uint64_t i;
  if (!v.Index(b, &i)) return false;
  const bool was = marks_[i] != 0;
  marks_[i] = 0;
  return was;
}

uint64_t TxTracker::outstanding() const {
  uint64_t n = held_;
  for (uint8_t m : marks_) n += m;
  return n;
}

uint64_t TxTracker::Reset() {
  const uint64_t n = outstanding();
  std::fill(marks_.begin(), marks_.end(), 0);
  held_ = 0;
  excess_ = 0;
  return n;
}

}  // namespace npa::shell
