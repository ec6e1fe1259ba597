#include "internal/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace pio::runtime::internal {
namespace {

// Bounds on one match attempt. Real pre-tokenizer patterns need a handful of backtracking steps
// per character; these stop a hostile pattern from running for minutes on one text.
constexpr uint32_t kMatchLimit = 10'000'000;
constexpr uint32_t kHeapLimitKiB = 64 * 1024;

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
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (compiled->code == nullptr) {
    return invalid_argument_error("pre-tokenizer regex does not compile at offset " +
                                  std::to_string(error_offset) + ": " + pcre2_message(error_code));
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
