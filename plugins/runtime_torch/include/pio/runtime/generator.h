#pragma once
// Generator: runs one request on a Qwen3Model: prefill of the prompt, then a decode loop that
// samples a token, streams its text and feeds it back, until an eos id, a stop string, the
// token limit or a cancel.
//
// What a caller gets wrong:
// - The text pieces given to the callback, joined, equal the result's text: text that might
//   begin a stop string, and bytes of an unfinished UTF-8 character, are held back and come with
//   a later token (or the last one). On cancel the held-back text is dropped.
// - An eos token is part of the result's ids but adds no text; the token that completes a stop
//   string is part of the ids too, while the text ends before the stop string.
// - Not thread-safe, like the model it drives: one generate() at a time per model.
// - A resumed request (GenerationRequest::resume) replays its earlier tokens one decode step at a
//   time, the way they were first produced, rather than in one prefill: a prefill's logits may
//   differ in the last bits, which can flip a greedy choice, and the sampler must draw once per
//   replayed token to stay on the seeded sequence.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/qwen3_model.h"
#include "pio/runtime/sampler.h"
#include "pio/runtime/tokenizer.h"

namespace pio::runtime {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // not empty
  SamplingParams sampling;
  int64_t max_new_tokens = 256;  // >= 1; also limited by max_position_embeddings
  std::vector<int32_t> eos_ids;
  std::vector<std::string> stop_strings;
  bool skip_special_tokens = true;  // in the text (the ids keep them)
  // Tokens an earlier run of this request already generated and streamed (it died): they are
  // replayed, not streamed again, and the run continues after them as the earlier one would have.
  // They count in the result's ids and towards max_new_tokens.
  std::vector<int32_t> resume;
};

enum class FinishReason { kEos, kStopString, kMaxTokens, kCancelled };
std::string_view finish_reason_name(FinishReason reason);  // "eos", "stop_string", ...

struct StreamedToken {
  int32_t id = 0;
  float logprob = 0.0f;
  std::string text;  // the text this token completes; may be empty
};
using TokenCallback = std::function<void(const StreamedToken&)>;

struct GenerationResult {
  std::vector<int32_t> ids;  // generated tokens only
  std::vector<float> logprobs;
  std::string text;
  FinishReason finish_reason = FinishReason::kMaxTokens;
  std::string stop_string;  // the one that matched, for kStopString
};

class Generator {
 public:
  Generator(Qwen3Model& model, Tokenizer tokenizer)
      : model_(model), tokenizer_(std::move(tokenizer)) {}

  // `cancel` (may be null) is read before every model step; set it from any thread.
  Result<GenerationResult> generate(const GenerationRequest& request,
                                    const TokenCallback& on_token = {},
                                    const std::atomic<bool>* cancel = nullptr);

 private:
  Qwen3Model& model_;
  Tokenizer tokenizer_;
};

}  // namespace pio::runtime
