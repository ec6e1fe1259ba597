#include "internal/unicode_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

namespace pio::runtime::internal {
namespace {

// Below U+0300 no code point changes under NFC and none composes with what precedes it, and every
// such code point is written with bytes below 0xCC: text made only of those is already NFC.
bool trivially_nfc(std::string_view text) {
  for (const char c : text) {
    if (static_cast<uint8_t>(c) >= 0xCC) return false;
  }
  return true;
}

// ASCII is invariant under all four forms.
bool is_ascii(std::string_view text) {
  for (const char c : text) {
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

Result<std::string> UnicodeNormalizer::normalize(std::string_view text) const {
  if (form_ == NormalForm::kNone || is_ascii(text)) return std::string(text);
  if (form_ == NormalForm::kNfc && trivially_nfc(text)) return std::string(text);

  int options = UTF8PROC_STABLE;
  switch (form_) {
    case NormalForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case NormalForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case NormalForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
    case NormalForm::kNone:
      break;
  }
  utf8proc_uint8_t* out = nullptr;
  // With an explicit length (no UTF8PROC_NULLTERM) an embedded NUL is an ordinary character.
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    return internal_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  }
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

}  // namespace pio::runtime::internal
