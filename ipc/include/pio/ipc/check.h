#pragma once
// PIO_CHECK: for broken invariants of our own code, never for anything the outside world can
// cause (use pio::Status for that). A failed check prints where and aborts.

namespace pio {
[[noreturn]] void check_failed(const char* condition, const char* file, int line);
}  // namespace pio

#define PIO_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::pio::check_failed(#cond, __FILE__, __LINE__))
