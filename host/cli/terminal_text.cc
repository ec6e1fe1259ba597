#include "terminal_text.h"

#include <cstdint>

#include "pio/ipc/utf8.h"

namespace pio::cli {

std::string terminal_text(std::string_view text) {
  // Valid UTF-8 first: then a C1 control can only be the two bytes C2 80-9F, and a lone byte
  // 0x80-0x9F (which an 8-bit terminal reads as C1) no longer exists.
  const std::string valid = ipc::to_valid_utf8(text);
  std::string out;
  out.reserve(valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    const auto c = static_cast<uint8_t>(valid[i]);
    if (c < 0x20 && c != '\n' && c != '\t') continue;
    if (c == 0x7F) continue;
    if (c == 0xC2 && i + 1 < valid.size()) {
      const auto next = static_cast<uint8_t>(valid[i + 1]);
      if (next >= 0x80 && next <= 0x9F) {
        ++i;
        continue;
      }
    }
    out += static_cast<char>(c);
  }
  return out;
}

}  // namespace pio::cli
