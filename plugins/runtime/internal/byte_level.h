#pragma once
// The GPT-2 byte-level alphabet: every byte is written as one printable code point, so that BPE
// vocabularies can hold arbitrary bytes as text. tokenizer.json stores its vocab in this alphabet.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pio::runtime::internal {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();

  // The UTF-8 text of the code point that stands for `byte`.
  const std::string& encode_byte(uint8_t byte) const { return byte_to_text_[byte]; }

  // Maps a vocab entry back to raw bytes. Returns nothing when some code point of `token` is not
  // in the alphabet (added tokens such as "<|im_start|>" are all in it; non-ASCII ones are not).
  std::optional<std::string> decode(std::string_view token) const;

 private:
  std::array<std::string, 256> byte_to_text_;
  std::array<int16_t, 324> code_point_to_byte_;  // -1 where the code point is not in the alphabet
};

}  // namespace pio::runtime::internal
