#include "internal/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

namespace pio::runtime::internal {
namespace {

// Decodes the code point that ends just before `end` (text is valid UTF-8, end > 0).
char32_t last_code_point(std::string_view text, size_t end, size_t* start) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80) --i;
  utf8proc_int32_t cp = 0;
  utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                   static_cast<utf8proc_ssize_t>(end - i), &cp);
  if (start != nullptr) *start = i;
  return static_cast<char32_t>(cp);
}

char32_t first_code_point(std::string_view text, size_t begin, size_t* length) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + begin),
                       static_cast<utf8proc_ssize_t>(text.size() - begin), &cp);
  if (length != nullptr) *length = n > 0 ? static_cast<size_t>(n) : 1;
  return static_cast<char32_t>(cp);
}

// Rust's char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t c) {
  if ((c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85) return true;
  if (c < 0x80) return false;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL ||
         category == UTF8PROC_CATEGORY_ZP;
}

// Rust's char::is_alphanumeric, by general category (letters and numbers).
bool is_word_char(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  // An empty content can never match anything useful; it is ignored.
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& segments) const {
  size_t emitted = 0;  // text before this offset is already in `segments`
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& candidates = by_first_byte_[static_cast<uint8_t>(text[pos])];
    const AddedToken* found = nullptr;
    for (const uint32_t index : candidates) {
      const std::string& content = tokens_[index].content;
      if (text.compare(pos, content.size(), content) == 0) {
        found = &tokens_[index];
        break;  // longest first
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + found->content.size();
    pos = stop;  // matches never overlap, whatever the strip rules do below
    if (found->single_word) {
      const bool free_left = start == 0 || !is_word_char(last_code_point(text, start, nullptr));
      const bool free_right =
          stop == text.size() || !is_word_char(first_code_point(text, stop, nullptr));
      if (!free_left || !free_right) continue;
    }
    if (found->lstrip) {
      size_t s = start;
      size_t prev_start = 0;
      while (s > emitted && is_whitespace(last_code_point(text, s, &prev_start))) s = prev_start;
      start = std::max(s, emitted);
    }
    if (found->rstrip) {
      size_t length = 0;
      while (stop < text.size() && is_whitespace(first_code_point(text, stop, &length)))
        stop += length;
      pos = stop;
    }
    if (start > emitted) segments.push_back({text.substr(emitted, start - emitted), -1});
    segments.push_back({text.substr(start, stop - start), found->id});
    emitted = stop;
  }
  if (emitted < text.size()) segments.push_back({text.substr(emitted), -1});
}

}  // namespace pio::runtime::internal
