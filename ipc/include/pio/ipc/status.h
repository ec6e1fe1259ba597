#pragma once
// The project's one error model: pio::Status and pio::Result<T>.
//
// It lives in the lowest layer (ipc) because everything above uses it. Every failure the outside
// world can cause (a worker crash, a malformed packet, a bad path, a limit) is a Status; a broken
// invariant of our own is a PIO_CHECK (see check.h) and aborts.

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "pio/ipc/check.h"

namespace pio {

// The canonical codes. Each says whether retrying the same call can help.
enum class ErrorCode : int {
  kOk = 0,
  // The request itself is wrong (bad field, bad path, bad bytes). Retrying never helps; fix it.
  kInvalidArgument = 1,
  // A named thing (plugin, model, file) does not exist. Retrying helps only after it is created.
  kNotFound = 2,
  // The caller or the plugin is not allowed to do this. Retrying never helps.
  kPermissionDenied = 3,
  // A limit or quota was hit (ring full, memory limit, rate limit). Retry later, with backoff.
  kResourceExhausted = 4,
  // The system is not in the state this call needs (plugin not active, channel closed by us).
  // Retrying helps only after the state is fixed.
  kFailedPrecondition = 5,
  // A transient failure (peer restarting, socket reset). Retry with backoff.
  kUnavailable = 6,
  // The deadline passed before the work finished. Retry with a longer deadline may help.
  kDeadlineExceeded = 7,
  // The caller cancelled. Do not retry unless the caller asks again.
  kCancelled = 8,
  // A bug of ours. Retrying is unlikely to help; report it.
  kInternal = 9,
  // The feature is not available here (kernel lacks it, plugin does not implement it).
  kUnimplemented = 10,
  // The plugin's worker died while handling this request. Retrying after the restart may help;
  // a plugin that keeps crashing is quarantined.
  kWorkerCrashed = 11,
};

// "invalid_argument", "worker_crashed", ...: stable names used in logs, metrics and HTTP bodies.
std::string_view error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "<code name>: <message>", or "ok".
  std::string to_string() const;

  // The same status with "<context>: " put in front of the message; ok stays ok.
  Status with_context(std::string_view context) const;

  // Explicitly drops a status the caller has decided not to act on.
  void ignore() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status ok_status() { return Status(); }
Status invalid_argument_error(std::string message);
Status not_found_error(std::string message);
Status permission_denied_error(std::string message);
Status resource_exhausted_error(std::string message);
Status failed_precondition_error(std::string message);
Status unavailable_error(std::string message);
Status deadline_exceeded_error(std::string message);
Status cancelled_error(std::string message);
Status internal_error(std::string message);
Status unimplemented_error(std::string message);
Status worker_crashed_error(std::string message);

// The one errno -> Status mapping for syscalls: "<what>: <strerror> (errno N)" with a code chosen
// from the errno (ENOENT -> not_found, EACCES/EPERM -> permission_denied, ENOMEM/EMFILE/ENOSPC ->
// resource_exhausted, ETIMEDOUT -> deadline_exceeded, EPIPE/ECONNRESET -> unavailable, ...).
Status errno_status(std::string_view what, int err);

// A value or the Status saying why there is none. Never holds an ok Status.
template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Status>, "Result<Status> makes no sense");

 public:
  Result(T value) : state_(std::in_place_index<1>, std::move(value)) {}        // NOLINT: implicit
  Result(Status status) : state_(std::in_place_index<0>, std::move(status)) {  // NOLINT: implicit
    PIO_CHECK(!std::get<0>(state_).ok());
  }

  bool ok() const { return state_.index() == 1; }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<0>(state_);
  }

  T& value() & {
    PIO_CHECK(ok());
    return std::get<1>(state_);
  }
  const T& value() const& {
    PIO_CHECK(ok());
    return std::get<1>(state_);
  }
  T&& value() && {
    PIO_CHECK(ok());
    return std::get<1>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> state_;
};

}  // namespace pio

// Returns the Status of `expr` from the enclosing function when it is not ok.
#define PIO_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::pio::Status pio_status_ = (expr);        \
    if (!pio_status_.ok()) return pio_status_; \
  } while (0)

#define PIO_CONCAT_INNER_(a, b) a##b
#define PIO_CONCAT_(a, b) PIO_CONCAT_INNER_(a, b)
// `PIO_ASSIGN_OR_RETURN(auto x, make_x());` declares x from a Result or returns its Status.
#define PIO_ASSIGN_OR_RETURN(lhs, expr) \
  PIO_ASSIGN_OR_RETURN_IMPL_(PIO_CONCAT_(pio_result_, __LINE__), lhs, expr)
// `lhs` is a declaration and `tmp` a name: neither can take parentheses.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PIO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
