#include "internal/utf8.h"

#include <cstdint>

namespace pio::runtime::internal {
namespace {

// Length a lead byte announces and the range its second byte must fall in (this is where
// overlongs, surrogates and values past U+10FFFF are ruled out); 0 for a byte that cannot lead.
struct LeadInfo {
  int length;
  uint8_t second_min;
  uint8_t second_max;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` form a valid prefix of one sequence (at most info.length).
int valid_prefix_length(std::string_view s, size_t pos, const LeadInfo& info) {
  int n = 1;
  while (n < info.length && pos + n < s.size()) {
    const auto b = static_cast<uint8_t>(s[pos + n]);
    const bool ok =
        n == 1 ? (b >= info.second_min && b <= info.second_max) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

size_t first_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<uint8_t>(text[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const LeadInfo info = lead_info(b);
    if (info.length == 0) return i;
    if (valid_prefix_length(text, i, info) != info.length) return i;
    i += static_cast<size_t>(info.length);
  }
  return text.size();
}

size_t append_utf8_lossy(std::string_view bytes, bool final, std::string& out) {
  size_t i = 0;
  size_t run_start = 0;  // start of the current run of valid bytes, copied in one go
  while (i < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const LeadInfo info = lead_info(b);
    const int n = info.length == 0 ? 0 : valid_prefix_length(bytes, i, info);
    if (n == info.length && n > 0) {
      i += static_cast<size_t>(n);
      continue;
    }
    if (n > 0 && i + static_cast<size_t>(n) == bytes.size() && !final) {
      // A sequence cut short by the end of the input: it may still complete.
      out.append(bytes.substr(run_start, i - run_start));
      return i;
    }
    out.append(bytes.substr(run_start, i - run_start));
    out.append(kReplacement);
    i += static_cast<size_t>(n == 0 ? 1 : n);
    run_start = i;
  }
  out.append(bytes.substr(run_start));
  return bytes.size();
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace pio::runtime::internal
