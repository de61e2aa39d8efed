// common/clock.h — the one monotonic clock of npa, in nanoseconds.
//
//   const uint64_t t0 = npa::MonotonicNs();
//   ...
//   if (npa::MonotonicNs() - t0 > kBoundNs) return absl::DeadlineExceededError(...);
//
// CLOCK_MONOTONIC: never goes back, does not jump with settimeofday or NTP
// steps, so every bounded wait and timeout in the shell and the agent uses
// it. Async-signal-safe; no allocation; callable from any thread.
#ifndef NPA_COMMON_CLOCK_H_
#define NPA_COMMON_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace npa {

inline uint64_t MonotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

inline uint64_t MonotonicMs() { return MonotonicNs() / 1000000ull; }

}  // namespace npa

#endif  // NPA_COMMON_CLOCK_H_
