#pragma once
// The added tokens of a tokenizer.json ("<|im_start|>", "<think>", ...): found in the text before
// any normalization or pre-tokenization and emitted whole, never split by BPE.
//
// Matching follows the reference implementation: leftmost-longest, non-overlapping; tokens marked
// `normalized: false` are found in the raw text, the others in the normalized text; `single_word`,
// `lstrip` and `rstrip` widen or reject a match by the whitespace and word characters around it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pio::runtime::internal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
};

// One stretch of text: either plain text (token_id < 0) or an added token.
struct TextSegment {
  std::string_view text;
  int32_t token_id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `tokens` are the ones this matcher looks for (the caller picks raw or normalized ones).
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }

  // Cuts `text` into plain stretches and added tokens, appended in order to `segments`.
  void split(std::string_view text, std::vector<TextSegment>& segments) const;

 private:
  std::vector<AddedToken> tokens_;
  // For each first byte, the indices of tokens starting with it, longest first.
  std::vector<std::vector<uint32_t>> by_first_byte_ = std::vector<std::vector<uint32_t>>(256);
};

}  // namespace pio::runtime::internal
