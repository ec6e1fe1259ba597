#include "pio/runtime/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <unordered_map>
#include <vector>

#include "pio/ipc/check.h"

namespace pio::runtime {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

using Candidate = Sampler::Candidate;

// Most likely first; equal logits by id, so the order (and every draw) is deterministic.
bool more_likely(const Candidate& a, const Candidate& b) {
  return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
}

// Softmax over the candidates in place (they stay sorted).
void normalise(std::vector<Candidate>& c) {
  const double top = c.front().logit;
  double sum = 0.0;
  for (Candidate& x : c) sum += (x.prob = std::exp(x.logit - top));
  for (Candidate& x : c) x.prob /= sum;
}

// Sorts the `count` most likely to the front, growing the sorted prefix only as far as needed.
void sort_front(std::vector<Candidate>& c, size_t count) {
  count = std::min(count, c.size());
  std::partial_sort(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(count), c.end(),
                    more_likely);
}

}  // namespace

SamplingParams SamplingParams::from_generation_config(const GenerationConfig& config) {
  SamplingParams p;
  p.temperature = config.do_sample ? config.temperature : 0.0;
  p.top_k = config.top_k;
  p.top_p = config.top_p;
  p.min_p = config.min_p;
  p.repetition_penalty = config.repetition_penalty;
  return p;
}

Status SamplingParams::validate() const {
  auto bad = [](std::string_view field, double value, std::string_view range) {
    return invalid_argument_error(fmt::format("{} = {} is outside {}", field, value, range));
  };
  if (!(temperature >= 0.0) || !std::isfinite(temperature)) {
    return bad("temperature", temperature, "[0, inf)");
  }
  if (top_k < 0) return bad("top_k", static_cast<double>(top_k), "[0, inf)");
  if (!(top_p > 0.0 && top_p <= 1.0)) return bad("top_p", top_p, "(0, 1]");
  if (!(min_p >= 0.0 && min_p <= 1.0)) return bad("min_p", min_p, "[0, 1]");
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", repetition_penalty, "(0, inf)");
  }
  if (!std::isfinite(presence_penalty)) return bad("presence_penalty", presence_penalty, "finite");
  if (!std::isfinite(frequency_penalty)) {
    return bad("frequency_penalty", frequency_penalty, "finite");
  }
  return ok_status();
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  PIO_CHECK(params.validate().ok());
  uint64_t seed = params.seed ? *params.seed
                              : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  for (uint64_t& word : state_) word = splitmix64(seed);
}

uint64_t Sampler::next_u64() {
  // xoshiro256** (Blackman & Vigna).
  const uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double Sampler::next_unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

SampledToken Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                             std::span<const int32_t> generated) {
  PIO_CHECK(!logits.empty());
  const auto vocab = static_cast<int32_t>(logits.size());

  // The raw distribution's log-normaliser, for the logprob of the chosen token.
  double raw_max = -std::numeric_limits<double>::infinity();
  for (const float l : logits) raw_max = std::max(raw_max, static_cast<double>(l));
  double raw_sum = 0.0;
  for (const float l : logits) raw_sum += std::exp(static_cast<double>(l) - raw_max);
  const double raw_log_norm = raw_max + std::log(raw_sum);
  auto chosen = [&](int32_t id) {
    return SampledToken{
        id,
        static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - raw_log_norm)};
  };

  std::vector<Candidate>& c = candidates_;
  c.resize(logits.size());
  for (int32_t i = 0; i < vocab; ++i) {
    c[static_cast<size_t>(i)] = {i, logits[static_cast<size_t>(i)], 0.0};
  }

  // Penalties act on the raw logits of tokens already seen.
  const SamplingParams& p = params_;
  if (p.repetition_penalty != 1.0) {
    std::vector<uint8_t>& seen = seen_;
    seen.assign(logits.size(), 0);
    for (auto ids : {prompt, generated}) {
      for (const int32_t id : ids) {
        if (id >= 0 && id < vocab) seen[static_cast<size_t>(id)] = 1;
      }
    }
    for (Candidate& x : c) {
      if (seen[static_cast<size_t>(x.id)] == 0) continue;
      x.logit = x.logit > 0 ? x.logit / p.repetition_penalty : x.logit * p.repetition_penalty;
    }
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int64_t> counts;
    for (const int32_t id : generated) {
      if (id >= 0 && id < vocab) ++counts[id];
    }
    for (const auto& [id, n] : counts) {
      c[static_cast<size_t>(id)].logit -=
          p.presence_penalty + p.frequency_penalty * static_cast<double>(n);
    }
  }

  if (p.temperature == 0.0) {
    const auto best = std::min_element(c.begin(), c.end(), more_likely);
    return chosen(best->id);
  }
  for (Candidate& x : c) x.logit /= p.temperature;

  // Keep the candidates sorted most likely first, sorting only as deep as the filters look.
  size_t sorted = std::min<size_t>(c.size(), 64);
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) {
    sorted = static_cast<size_t>(p.top_k);
    sort_front(c, sorted);
    c.resize(sorted);
  } else {
    sort_front(c, sorted);
  }
  if (p.top_p < 1.0) {
    // The kept set is the smallest most-likely prefix holding top_p of the probability (at
    // least one token); sort deeper until the sorted prefix gets there.
    for (;;) {
      normalise(c);
      double cumulative = 0.0;
      size_t cut = 0;
      while (cut < sorted && cumulative < p.top_p) cumulative += c[cut++].prob;
      if (cumulative >= p.top_p || sorted == c.size()) {
        c.resize(std::max<size_t>(cut, 1));
        break;
      }
      sorted = std::min(c.size(), sorted * 4);
      sort_front(c, sorted);
    }
  }
  normalise(c);
  if (p.min_p > 0.0) {
    // c.front() is the most likely and always stays.
    const double threshold = p.min_p * c.front().prob;
    std::erase_if(c, [threshold](const Candidate& x) { return x.prob < threshold; });
    normalise(c);
  }

  // Inverse CDF over the kept candidates, most likely first.
  const double u = next_unit();
  double cumulative = 0.0;
  for (const Candidate& x : c) {
    cumulative += x.prob;
    if (u < cumulative) return chosen(x.id);
  }
  return chosen(c.back().id);  // u rounding past the last cumulative sum
}

}  // namespace pio::runtime
