#include "internal/byte_level.h"

#include "internal/utf8.h"

namespace pio::runtime::internal {
namespace {

bool printable_as_itself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

}  // namespace

ByteLevelAlphabet::ByteLevelAlphabet() {
  code_point_to_byte_.fill(-1);
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = printable_as_itself(b) ? static_cast<char32_t>(b)
                                               : static_cast<char32_t>(256 + next_extra++);
    append_utf8(cp, byte_to_text_[static_cast<size_t>(b)]);
    code_point_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

std::optional<std::string> ByteLevelAlphabet::decode(std::string_view token) const {
  std::string bytes;
  bytes.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    const auto b0 = static_cast<uint8_t>(token[i]);
    char32_t cp = 0;
    if (b0 < 0x80) {
      cp = b0;
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3F);
      i += 2;
    } else {
      return std::nullopt;  // every alphabet code point is below U+0800: two bytes at most
    }
    if (cp >= code_point_to_byte_.size() || code_point_to_byte_[cp] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(code_point_to_byte_[cp]));
  }
  return bytes;
}

}  // namespace pio::runtime::internal
