#pragma once
// UTF-8 checks and the one lossy decoding rule the tokenizer uses everywhere.

#include <cstddef>
#include <string>
#include <string_view>

namespace pio::runtime::internal {

// Byte offset of the first byte that breaks UTF-8 validity (overlongs, surrogates and code points
// past U+10FFFF included), or text.size() when the whole text is valid.
size_t first_invalid_utf8(std::string_view text);

// Appends `bytes` to `out` as valid UTF-8, replacing each maximal ill-formed subpart with U+FFFD
// (the Unicode "substitution of maximal subparts" rule, which Rust's from_utf8_lossy also uses).
// When `final` is false, a trailing sequence that is cut short but could still become valid is not
// consumed; the return value is the number of bytes consumed, so a caller can keep the rest and
// retry once more bytes arrive. Feeding a byte stream in pieces gives the same text as feeding it
// whole, which is what makes streaming decoding agree with full decoding.
size_t append_utf8_lossy(std::string_view bytes, bool final, std::string& out);

// Appends the UTF-8 encoding of a code point (which must be a valid scalar value).
void append_utf8(char32_t code_point, std::string& out);

}  // namespace pio::runtime::internal
