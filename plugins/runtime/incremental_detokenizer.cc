#include "pio/runtime/incremental_detokenizer.h"

#include "internal/utf8.h"

namespace pio::runtime {

std::string IncrementalDetokenizer::push(int32_t id) {
  if (skip_special_tokens_ && tokenizer_.is_special(id)) return {};
  pending_.append(tokenizer_.token_bytes(id));
  std::string text;
  const size_t consumed = internal::append_utf8_lossy(pending_, /*final=*/false, text);
  pending_.erase(0, consumed);
  return text;
}

std::string IncrementalDetokenizer::finish() {
  std::string text;
  internal::append_utf8_lossy(pending_, /*final=*/true, text);
  pending_.clear();
  return text;
}

}  // namespace pio::runtime
