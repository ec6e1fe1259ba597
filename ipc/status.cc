#include "pio/ipc/status.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pio/ipc/errno_text.h"

namespace pio {

void check_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "PIO_CHECK failed: %s at %s:%d\n", condition, file, line);
  (void)std::fflush(stderr);
  std::abort();
}

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kFailedPrecondition:
      return "failed_precondition";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kUnimplemented:
      return "unimplemented";
    case ErrorCode::kWorkerCrashed:
      return "worker_crashed";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", error_code_name(code_), message_);
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, fmt::format("{}: {}", context, message_));
}

Status invalid_argument_error(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
Status not_found_error(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
Status permission_denied_error(std::string m) {
  return {ErrorCode::kPermissionDenied, std::move(m)};
}
Status resource_exhausted_error(std::string m) {
  return {ErrorCode::kResourceExhausted, std::move(m)};
}
Status failed_precondition_error(std::string m) {
  return {ErrorCode::kFailedPrecondition, std::move(m)};
}
Status unavailable_error(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
Status deadline_exceeded_error(std::string m) {
  return {ErrorCode::kDeadlineExceeded, std::move(m)};
}
Status cancelled_error(std::string m) { return {ErrorCode::kCancelled, std::move(m)}; }
Status internal_error(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
Status unimplemented_error(std::string m) { return {ErrorCode::kUnimplemented, std::move(m)}; }
Status worker_crashed_error(std::string m) { return {ErrorCode::kWorkerCrashed, std::move(m)}; }

Status errno_status(std::string_view what, int err) {
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      code = ErrorCode::kNotFound;
      break;
    case EACCES:
    case EPERM:
    case EROFS:
      code = ErrorCode::kPermissionDenied;
      break;
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case ENOSPC:
    case EAGAIN:
    case EFBIG:
    case EDQUOT:
      code = ErrorCode::kResourceExhausted;
      break;
    case ETIMEDOUT:
      code = ErrorCode::kDeadlineExceeded;
      break;
    case EPIPE:
    case ECONNRESET:
    case ECONNREFUSED:
    case ENOTCONN:
    case EIO:
      code = ErrorCode::kUnavailable;
      break;
    case EINVAL:
    case EBADF:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
    case EMSGSIZE:
      code = ErrorCode::kInvalidArgument;
      break;
    case ENOSYS:
    case EOPNOTSUPP:
      code = ErrorCode::kUnimplemented;
      break;
    case ECANCELED:
    case EINTR:
      code = ErrorCode::kCancelled;
      break;
    default:
      break;
  }
  return Status(code, fmt::format("{}: {} (errno {})", what, errno_text(err), err));
}

}  // namespace pio
