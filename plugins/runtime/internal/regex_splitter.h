#pragma once
// The "Split" pre-tokenizer with behavior "Isolated": cuts text into the pattern's matches and the
// stretches between them. The pattern comes from tokenizer.json and runs on PCRE2 with Unicode
// properties (\p{L}, \p{N}, \s in the Unicode sense).
//
// A caller would get this wrong: the pattern is third-party input. Compilation errors come back as
// Status, and matching is bounded (match and heap limits), so a pathological pattern yields an
// error for that text rather than a hang.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::runtime::internal {

class RegexSplitter {
 public:
  static Result<RegexSplitter> create(std::string_view pattern);

  // Appends the pieces of `text` (valid UTF-8) to `pieces`, in order; together they are `text`.
  // Safe to call from several threads at once.
  Status split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Compiled;
  explicit RegexSplitter(std::shared_ptr<const Compiled> compiled)
      : compiled_(std::move(compiled)) {}

  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace pio::runtime::internal
