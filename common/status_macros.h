// common/status_macros.h — small helpers missing from Debian's Abseil 20220623.
//
//   absl::Status Open() {
//     NPA_RETURN_IF_ERROR(Bind());
//     NPA_ASSIGN_OR_RETURN(int fd, Connect(path));
//     if (ioctl(fd, X) < 0) return npa::ErrnoError(errno, "ioctl X on ", path);
//   }
#ifndef NPA_COMMON_STATUS_MACROS_H_
#define NPA_COMMON_STATUS_MACROS_H_

#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace npa {

// A status from errno at the syscall seam, naming the operation and object.
template <typename... Args>
absl::Status ErrnoError(int err, const Args&... what) {
  return absl::ErrnoToStatus(err, absl::StrCat(what...));
}

// Negative errno for the C ABI, from a status (best effort by code).
int StatusToErrno(const absl::Status& s);

}  // namespace npa

#define NPA_STATUS_CONCAT_INNER_(a, b) a##b
#define NPA_STATUS_CONCAT_(a, b) NPA_STATUS_CONCAT_INNER_(a, b)

#define NPA_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::absl::Status npa_status_ = (expr);          \
    if (!npa_status_.ok()) return npa_status_;    \
  } while (0)

#define NPA_ASSIGN_OR_RETURN(lhs, expr) \
  NPA_ASSIGN_OR_RETURN_IMPL_(NPA_STATUS_CONCAT_(npa_statusor_, __LINE__), lhs, expr)
#define NPA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()

#endif  // NPA_COMMON_STATUS_MACROS_H_
