// tokenizer_fuzzer: Tokenizer::from_json on arbitrary bytes (a model folder's tokenizer.json is
// third-party), then encode, decode and streaming decode with whatever loaded.
// Input: tokenizer.json bytes, optionally followed by a NUL byte and a text to encode; the text's
// bytes, read as little-endian 16-bit numbers, are also decoded as token ids.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "pio/ipc/check.h"
#include "pio/runtime/incremental_detokenizer.h"
#include "pio/runtime/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos
                                    ? std::string_view("Hello, world! 123 \xC3\xA9<|im_end|>")
                                    : input.substr(nul + 1);

  auto tokenizer = pio::runtime::Tokenizer::from_json(json);
  if (!tokenizer.ok()) return 0;

  auto ids = tokenizer->encode(text);
  if (ids.ok()) {
    for (const int32_t id : *ids) PIO_CHECK(id >= 0 && id < tokenizer->id_limit());
    (void)tokenizer->decode(*ids);
  }

  std::vector<int32_t> raw_ids;
  for (size_t i = 0; i + 1 < text.size(); i += 2) {
    raw_ids.push_back(static_cast<int32_t>(static_cast<uint8_t>(text[i]) |
                                           (static_cast<uint8_t>(text[i + 1]) << 8)));
  }
  const std::string whole = tokenizer->decode(raw_ids, /*skip_special_tokens=*/true);
  pio::runtime::IncrementalDetokenizer detokenizer(*tokenizer, /*skip_special_tokens=*/true);
  std::string streamed;
  for (const int32_t id : raw_ids) streamed += detokenizer.push(id);
  streamed += detokenizer.finish();
  // Streaming must agree with decoding the whole sequence at once.
  PIO_CHECK(streamed == whole);
  return 0;
}
