#include "internal/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace pio::runtime::internal {
namespace {

// Bounds on one match attempt. Real pre-tokenizer patterns need a handful of backtracking steps
// per character; these stop a hostile pattern from running for minutes on one text.
constexpr uint32_t kMatchLimit = 10'000'000;
constexpr uint32_t kHeapLimitKiB = 64 * 1024;

// Oniguruma's \s (what the reference implementation runs these patterns on) is exactly this set;
// PCRE2's \s also takes U+180E MONGOLIAN VOWEL SEPARATOR, a format character since Unicode 6.3.
constexpr std::string_view kOnigSpaceSet = R"(\t\n\x0B\f\r\x20\x{85}\p{Zl}\p{Zp}\p{Zs})";

// Rewrites \s and \S into Oniguruma's definition so that PCRE2 splits text the same way. \S
// inside a character class is left as is (a class cannot subtract a set before PCRE2 10.45).
std::string with_onig_spaces(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      if (next == 'Q') {  // \Q...\E is literal text, copied untouched
        const size_t end = pattern.find("\\E", i + 2);
        const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
        out.append(pattern.substr(i, stop - i));
        i = stop;
        continue;
      }
      if (next == 's') {
        out += in_class ? std::string(kOnigSpaceSet) : "[" + std::string(kOnigSpaceSet) + "]";
      } else if (next == 'S' && !in_class) {
        out += "[^" + std::string(kOnigSpaceSet) + "]";
      } else {
        out.append(pattern.substr(i, 2));
      }
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i < pattern.size() && pattern[i] == '^') out.push_back(pattern[i++]);
      if (i < pattern.size() && pattern[i] == ']') out.push_back(pattern[i++]);
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // a POSIX class such as [:alpha:]
      const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
      out.append(pattern.substr(i, stop - i));
      i = stop;
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0)
    return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct RegexSplitter::Compiled {
  ~Compiled() {
    pcre2_match_context_free(match_context);
    pcre2_code_free(code);
  }
  pcre2_code* code = nullptr;
  pcre2_match_context* match_context = nullptr;
};

Result<RegexSplitter> RegexSplitter::create(std::string_view pattern) {
  auto compiled = std::make_shared<Compiled>();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  const std::string rewritten = with_onig_spaces(pattern);
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                 PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (compiled->code == nullptr) {
    return invalid_argument_error("pre-tokenizer regex \"" + std::string(pattern.substr(0, 200)) +
                                  "\" does not compile: " + pcre2_message(error_code));
  }
  // JIT is an optimisation only: where it is unavailable the interpreter gives the same matches.
  (void)pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
  compiled->match_context = pcre2_match_context_create(nullptr);
  if (compiled->match_context == nullptr) return resource_exhausted_error("pcre2 match context");
  pcre2_set_match_limit(compiled->match_context, kMatchLimit);
  pcre2_set_heap_limit(compiled->match_context, kHeapLimitKiB);
  return RegexSplitter(std::move(compiled));
}

Status RegexSplitter::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_data(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  if (match_data == nullptr) return resource_exhausted_error("pcre2 match data");

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t last_end = 0;  // end of the previous match: text between matches is a piece too
  size_t pos = 0;
  uint32_t options = PCRE2_NO_UTF_CHECK;  // the tokenizer validated the UTF-8 already
  while (pos <= text.size()) {
    int rc = pcre2_match(compiled_->code, subject, text.size(), pos, options, match_data.get(),
                         compiled_->match_context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT's fixed machine stack ran out; the interpreter keeps its frames on the heap.
      rc = pcre2_match(compiled_->code, subject, text.size(), pos, options | PCRE2_NO_JIT,
                       match_data.get(), compiled_->match_context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return resource_exhausted_error("pre-tokenizer regex gave up on a text of " +
                                      std::to_string(text.size()) + " bytes: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data.get());
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (start > last_end) pieces.push_back(text.substr(last_end, start - last_end));
    if (end > start) pieces.push_back(text.substr(start, end - start));
    last_end = end;
    pos = end;
    if (end == start) {
      // An empty match still cuts the text there (as in the reference implementation) but yields
      // no piece of its own; the search resumes one whole character further on.
      if (pos >= text.size()) break;
      ++pos;
      while (pos < text.size() && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  if (last_end < text.size()) pieces.push_back(text.substr(last_end));
  return ok_status();
}

}  // namespace pio::runtime::internal
