#include "pio/ipc/utf8.h"

#include <cstdint>

namespace pio::ipc {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the sequence at `bytes[i]`: the whole character when it is well-formed
// (*well_formed = true), else the maximal subpart to replace (at least 1 byte).
size_t sequence_at(std::string_view bytes, size_t i, bool* well_formed) {
  const auto lead = static_cast<uint8_t>(bytes[i]);
  *well_formed = false;
  if (lead < 0x80) {
    *well_formed = true;
    return 1;
  }
  // Table 3-7 of the Unicode standard: the lead byte decides the length and the range of the
  // first continuation byte (which excludes overlong forms, surrogates and code points past
  // U+10FFFF); later continuation bytes are 0x80-0xBF.
  size_t continuation = 0;
  uint8_t low = 0x80;
  uint8_t high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
  } else if (lead == 0xE0) {
    continuation = 2, low = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    continuation = 2;
  } else if (lead == 0xED) {
    continuation = 2, high = 0x9F;
  } else if (lead == 0xF0) {
    continuation = 3, low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    continuation = 3;
  } else if (lead == 0xF4) {
    continuation = 3, high = 0x8F;
  } else {
    return 1;  // 0x80-0xC1, 0xF5-0xFF never start a character
  }
  for (size_t k = 1; k <= continuation; ++k) {
    if (i + k >= bytes.size()) return k;
    const auto b = static_cast<uint8_t>(bytes[i + k]);
    if (b < low || b > high) return k;
    low = 0x80;
    high = 0xBF;
  }
  *well_formed = true;
  return continuation + 1;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    bool well_formed;
    i += sequence_at(bytes, i, &well_formed);
    if (!well_formed) return false;
  }
  return true;
}

std::string to_valid_utf8(std::string_view bytes) {
  if (is_valid_utf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 16);
  size_t i = 0;
  while (i < bytes.size()) {
    bool well_formed;
    const size_t n = sequence_at(bytes, i, &well_formed);
    if (well_formed) {
      out.append(bytes.substr(i, n));
    } else {
      out.append(kReplacement);
    }
    i += n;
  }
  return out;
}

}  // namespace pio::ipc
