#pragma once
// The pre-tokenizer of a byte-level BPE tokenizer.json: the regex splits it declares, applied in
// order, each one cutting the pieces of the one before ("Sequence" of "Split" and "ByteLevel").

#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "internal/regex_splitter.h"
#include "pio/ipc/status.h"

namespace pio::runtime::internal {

class PreTokenizer {
 public:
  // Reads the "pre_tokenizer" object. Fails with unimplemented for kinds this runtime does not
  // handle, and with invalid_argument when the tokenizer is not byte-level (no ByteLevel step).
  static Result<PreTokenizer> from_json(const nlohmann::json& config);

  // Appends the pieces of `text` (valid UTF-8) to `pieces`.
  Status split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  Status add(const nlohmann::json& config, bool& byte_level, int depth);

  std::vector<RegexSplitter> splitters_;
};

}  // namespace pio::runtime::internal
