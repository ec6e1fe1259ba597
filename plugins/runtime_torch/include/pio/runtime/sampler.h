#pragma once
// Sampler: picks the next token from a row of logits: penalties, then temperature, top-k, top-p
// and min-p (the order transformers applies them), then greedy argmax or a seeded draw.
//
// Plain C++ over a float span (no libtorch). Draws come from the sampler's own xoshiro256**
// stream, so the same seed gives the same tokens on every machine and standard library (the
// std:: distributions are implementation-defined).
//
// What a caller gets wrong: the penalties need the tokens seen so far, passed on every call
// (repetition counts prompt and output, presence and frequency only the output, as vLLM does);
// and the logprob returned is that of the model's raw distribution (log-softmax of the logits
// before any penalty, temperature or filter), as OpenAI-style APIs report it.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/generation_config.h"

namespace pio::runtime {

struct SamplingParams {
  // 0 = greedy (argmax; ties to the lowest id). Otherwise logits are divided by it.
  double temperature = 1.0;
  int64_t top_k = 0;                // 0 = off; else keep the k most likely
  double top_p = 1.0;               // (0, 1]; keep the smallest set with this much probability
  double min_p = 0.0;               // [0, 1]; drop tokens under min_p x the top probability
  double repetition_penalty = 1.0;  // > 0; logit/p if positive, logit*p if not (transformers)
  double presence_penalty = 0.0;    // subtracted once from each token already generated
  double frequency_penalty = 0.0;   // subtracted per time a token was generated
  std::optional<uint64_t> seed;     // none: seeded from std::random_device

  // The defaults a checkpoint's generation_config.json asks for (greedy unless do_sample).
  static SamplingParams from_generation_config(const GenerationConfig& config);
  // invalid_argument naming the field when a value is out of range.
  Status validate() const;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;  // of the raw distribution, see above
};

class Sampler {
 public:
  // `params` must validate().
  explicit Sampler(const SamplingParams& params);

  // `logits` is one row (vocabulary size); `prompt` and `generated` are the tokens so far.
  SampledToken sample(std::span<const float> logits, std::span<const int32_t> prompt,
                      std::span<const int32_t> generated);

  const SamplingParams& params() const { return params_; }

  // One token in play while sampling (used inside sample(); public only for its helpers).
  struct Candidate {
    int32_t id;
    double logit;  // after penalties and temperature
    double prob;
  };

 private:
  uint64_t next_u64();
  double next_unit();  // uniform in [0, 1) with 53 random bits

  // Reused between calls: a fresh vocabulary-sized buffer per token costs page faults.
  std::vector<Candidate> candidates_;
  std::vector<uint8_t> seen_;

  SamplingParams params_;
  uint64_t state_[4];
};

}  // namespace pio::runtime
