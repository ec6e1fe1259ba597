#pragma once
// Tokenizer: a Hugging Face tokenizer.json of the byte-level BPE kind (Qwen, GPT-2, Llama 3 style),
// giving the same ids as the reference `tokenizers` library: added tokens first, then the
// normalizer, the pre-tokenizer's regex splits, and BPE with merge ranks on each piece.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::runtime {

// Cheap to copy (shares its immutable tables) and safe to use from several threads at once.
//
// What a caller would get wrong: tokenizer.json comes from a third-party model folder, so loading
// validates everything and fails with a Status, never a crash. And encode() matches added tokens
// such as "<|im_start|>" in the text itself, like the reference library does: text from an end
// user that must not produce control tokens has to be escaped or checked by the caller.
class Tokenizer {
 public:
  // Largest tokenizer.json accepted (the real ones are about 11 MB).
  static constexpr size_t kMaxFileBytes = 256u << 20;

  static Result<Tokenizer> from_json(std::string_view json_text);
  static Result<Tokenizer> from_file(const std::filesystem::path& path);

  // The ids of `text`, without any template tokens (BOS/EOS) added. Fails on invalid UTF-8.
  Result<std::vector<int32_t>> encode(std::string_view text) const;

  // The text of `ids`. Ids that name no token are skipped and bytes that do not form UTF-8 become
  // U+FFFD, as in the reference library. With skip_special_tokens, tokens marked special
  // ("<|im_end|>") are left out; added tokens that are not special ("<think>") stay.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The raw bytes one token stands for; may be part of a UTF-8 character. Empty for an id that
  // names no token. See IncrementalDetokenizer for streaming text.
  std::string_view token_bytes(int32_t id) const;

  // The id of a vocab entry (in the byte-level alphabet, e.g. "Ġthe") or an added token's text.
  std::optional<int32_t> token_to_id(std::string_view token) const;

  bool is_special(int32_t id) const;

  // One past the highest id of any token.
  int32_t id_limit() const;

 private:
  struct State;
  explicit Tokenizer(std::shared_ptr<const State> state) : state_(std::move(state)) {}

  std::shared_ptr<const State> state_;
};

}  // namespace pio::runtime
