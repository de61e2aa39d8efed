#include "common/status_macros.h"

namespace npa {

int StatusToErrno(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return 0;
    case absl::StatusCode::kInvalidArgument: return -EINVAL;
    case absl::StatusCode::kNotFound: return -ENOENT;
    case absl::StatusCode::kAlreadyExists: return -EEXIST;
    case absl::StatusCode::kPermissionDenied: return -EPERM;
    case absl::StatusCode::kResourceExhausted: return -ENOMEM;
    case absl::StatusCode::kFailedPrecondition: return -EBUSY;
    case absl::StatusCode::kAborted: return -ECONNABORTED;
    case absl::StatusCode::kOutOfRange: return -ERANGE;
    case absl::StatusCode::kUnimplemented: return -ENOTSUP;
    case absl::StatusCode::kUnavailable: return -EAGAIN;
    case absl::StatusCode::kDeadlineExceeded: return -ETIMEDOUT;
    case absl::StatusCode::kDataLoss: return -EPROTO;
    default: return -EIO;
  }
}

}  // namespace npa
