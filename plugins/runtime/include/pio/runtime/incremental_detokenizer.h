#pragma once
// IncrementalDetokenizer: turns a stream of generated token ids into text pieces as they come,
// never emitting half of a UTF-8 character (byte-level tokens often split one, e.g. an emoji into
// three tokens). The pieces joined equal Tokenizer::decode of all the ids.

#include <cstdint>
#include <string>

#include "pio/runtime/tokenizer.h"

namespace pio::runtime {

// One per generated sequence; not thread-safe. What a caller would get wrong: the text of the
// last tokens may be held back waiting for the rest of a character, so call finish() when the
// sequence ends (stop token, max tokens, cancel) or that tail is lost.
class IncrementalDetokenizer {
 public:
  // `tokenizer` is copied (cheap: it shares its tables).
  explicit IncrementalDetokenizer(Tokenizer tokenizer, bool skip_special_tokens = false)
      : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

  // The text that became complete with `id`: valid UTF-8, possibly empty.
  std::string push(int32_t id);

  // The held-back tail, each incomplete character as U+FFFD. The detokenizer can be reused after.
  std::string finish();

  // Bytes held back waiting for the rest of a character (at most 3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace pio::runtime
