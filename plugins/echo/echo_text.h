#pragma once
// The echo plugin's "tokenizer": one token per Unicode code point, the token id being the code
// point. Bytes that are not valid UTF-8 become U+FFFD, so detokenize(tokenize(s)) == s exactly
// when s is valid UTF-8.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pio::echo {

std::vector<int32_t> code_points(std::string_view text);
// Appends the UTF-8 of `code_point` (U+FFFD for a value that is not a Unicode scalar value).
void append_utf8(int32_t code_point, std::string* out);
std::string utf8_of(std::span<const int32_t> code_points);

}  // namespace pio::echo
