#include "pio/runtime/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

#include "pio/runtime/incremental_detokenizer.h"
#include "pio/runtime/stop_strings.h"

namespace pio::runtime {

namespace {

// log softmax(logits)[id], as the sampler reports it for a token it chose.
float log_probability(std::span<const float> logits, int32_t id) {
  double top = -std::numeric_limits<double>::infinity();
  for (const float l : logits) top = std::max(top, static_cast<double>(l));
  double sum = 0.0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l) - top);
  return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - top -
                            std::log(sum));
}

}  // namespace

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kStopString:
      return "stop_string";
    case FinishReason::kMaxTokens:
      return "max_tokens";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

Result<GenerationResult> Generator::generate(const GenerationRequest& request,
                                             const TokenCallback& on_token,
                                             const std::atomic<bool>* cancel) {
  if (request.prompt.empty()) return invalid_argument_error("generate: the prompt is empty");
  if (request.max_new_tokens < 1) {
    return invalid_argument_error(
        fmt::format("generate: max_new_tokens {} must be >= 1", request.max_new_tokens));
  }
  PIO_RETURN_IF_ERROR(request.sampling.validate().with_context("generate"));
  const auto prompt_tokens = static_cast<int64_t>(request.prompt.size());
  const int64_t max_positions = model_.config().max_position_embeddings;
  if (prompt_tokens >= max_positions) {
    return invalid_argument_error(fmt::format(
        "generate: the prompt's {} tokens leave no room under max_position_embeddings {}",
        prompt_tokens, max_positions));
  }
  const int64_t max_new = std::min(request.max_new_tokens, max_positions - prompt_tokens);
  if (static_cast<int64_t>(request.resume.size()) > max_new) {
    return invalid_argument_error(fmt::format(
        "generate: {} tokens to resume after, more than the {} this request may generate",
        request.resume.size(), max_new));
  }
  for (const int32_t id : request.resume) {
    if (id < 0 || id >= model_.vocab_size()) {
      return invalid_argument_error(
          fmt::format("generate: a token to resume after, {}, is outside the vocabulary [0, {})",
                      id, model_.vocab_size()));
    }
  }
  PIO_ASSIGN_OR_RETURN(KvCache cache, model_.new_cache(prompt_tokens + max_new));

  auto cancelled = [cancel] {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
  };
  GenerationResult result;
  if (cancelled()) {
    result.finish_reason = FinishReason::kCancelled;
    return result;
  }
  PIO_ASSIGN_OR_RETURN(std::vector<float> logits, model_.forward(request.prompt, 0, cache));

  Sampler sampler(request.sampling);
  IncrementalDetokenizer detokenizer(tokenizer_, request.skip_special_tokens);
  StopStringScanner stops(request.stop_strings);
  size_t replayed = 0;
  for (;;) {
    SampledToken token = sampler.sample(logits, request.prompt, result.ids);
    // A token of the earlier run takes the place of the one sampled here (the same one when the
    // run is greedy or seeded); the draw above kept the sampler on the earlier run's sequence.
    const bool replay = replayed < request.resume.size();
    if (replay) {
      const int32_t id = request.resume[replayed++];
      token = SampledToken{id, log_probability(logits, id)};
    }
    result.ids.push_back(token.id);
    result.logprobs.push_back(token.logprob);

    StreamedToken streamed{token.id, token.logprob, {}};
    const bool eos = std::find(request.eos_ids.begin(), request.eos_ids.end(), token.id) !=
                     request.eos_ids.end();
    if (!eos) streamed.text = stops.push(detokenizer.push(token.id));
    bool done = true;
    if (stops.stopped()) {
      result.finish_reason = FinishReason::kStopString;
      result.stop_string = stops.matched();
    } else if (eos) {
      result.finish_reason = FinishReason::kEos;
    } else if (static_cast<int64_t>(result.ids.size()) >= max_new) {
      result.finish_reason = FinishReason::kMaxTokens;
    } else {
      done = false;
    }
    if (done && !stops.stopped()) {
      // The stream ends: flush the detokenizer's partial character, then whatever was held back
      // for a stop string (which may still complete with that last text).
      streamed.text += stops.push(detokenizer.finish());
      if (stops.stopped()) {
        result.finish_reason = FinishReason::kStopString;
        result.stop_string = stops.matched();
      } else {
        streamed.text += stops.finish();
      }
    }
    result.text += streamed.text;
    if (on_token && !replay) on_token(streamed);
    if (done) return result;
    if (cancelled()) {
      result.finish_reason = FinishReason::kCancelled;
      return result;
    }
    const int32_t last = token.id;
    PIO_ASSIGN_OR_RETURN(logits,
                         model_.forward(std::span<const int32_t>(&last, 1), cache.length(), cache));
  }
}

}  // namespace pio::runtime
