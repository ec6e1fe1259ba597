#pragma once
// The Unicode normalization step of a tokenizer.json "normalizer" (NFC, NFD, NFKC, NFKD or none).

#include <string>
#include <string_view>

#include "pio/ipc/status.h"

namespace pio::runtime::internal {

enum class NormalForm { kNone, kNfc, kNfd, kNfkc, kNfkd };

class UnicodeNormalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form = NormalForm::kNone) : form_(form) {}

  NormalForm form() const { return form_; }

  // `text` must be valid UTF-8 (the tokenizer checks its input once, up front).
  Result<std::string> normalize(std::string_view text) const;

 private:
  NormalForm form_;
};

}  // namespace pio::runtime::internal
