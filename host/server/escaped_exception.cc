#include "escaped_exception.h"

#include <cstdio>
#include <exception>
#include <string>

namespace pio::server {

Status escaped_exception(std::string_view where) noexcept {
  const char* what = "an exception that is not a std::exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  std::fprintf(stderr, "pio server: %.*s: an exception escaped: %s\n",
               static_cast<int>(where.size()), where.data(), what);
  try {
    return internal_error(
        std::string("the server failed while answering (") + std::string(where) +
        "); the request was not completed, retry it, and tell the operator if it persists");
  } catch (...) {
    return Status(ErrorCode::kInternal, {});
  }
}

}  // namespace pio::server
