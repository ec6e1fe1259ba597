#include "pio/ipc/errno_text.h"

#include <cstring>

namespace pio {

std::string_view errno_text(int err) {
  const char* text = strerrordesc_np(err);  // glibc: a constant string, no shared buffer
  return text != nullptr ? text : "unknown error";
}

}  // namespace pio
