#include "pio/runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace pio::runtime {
namespace {

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (const double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

SamplingParams seeded(uint64_t seed = 1) {
  SamplingParams p;
  p.seed = seed;
  return p;
}

// How often each id comes out in `draws` samples.
std::map<int32_t, int> histogram(const SamplingParams& params, const std::vector<float>& logits,
                                 int draws, const std::vector<int32_t>& generated = {}) {
  Sampler sampler(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[sampler.sample(logits, {}, generated).id];
  return counts;
}

TEST(Sampler, GreedyPicksTheArgmaxWithTiesToTheLowestId) {
  SamplingParams p = seeded();
  p.temperature = 0.0;
  Sampler sampler(p);
  EXPECT_EQ(sampler.sample(std::vector<float>{0.1f, 3.0f, -2.0f, 3.0f}, {}, {}).id, 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{-5.0f}, {}, {}).id, 0);
}

TEST(Sampler, ReportsTheLogprobOfTheRawDistribution) {
  SamplingParams p = seeded();
  p.temperature = 0.0;
  p.repetition_penalty = 3.0;  // changes the choice's logit, not the reported logprob
  Sampler sampler(p);
  const std::vector<float> logits = logits_of({0.25, 0.75});
  const std::vector<int32_t> prompt = {0};
  const SampledToken t = sampler.sample(logits, prompt, {});
  EXPECT_EQ(t.id, 1);
  EXPECT_NEAR(t.logprob, std::log(0.75), 1e-6);
}

TEST(Sampler, TheSameSeedGivesTheSameTokensAndAnotherSeedOthers) {
  const std::vector<float> logits = logits_of({0.1, 0.2, 0.3, 0.15, 0.25});
  auto draw = [&](uint64_t seed) {
    Sampler sampler(seeded(seed));
    std::vector<int32_t> ids;
    for (int i = 0; i < 200; ++i) ids.push_back(sampler.sample(logits, {}, ids).id);
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, DrawsInProportionToTheProbabilities) {
  const auto counts = histogram(seeded(), logits_of({0.25, 0.75}), 4000);
  EXPECT_NEAR(counts.at(1) / 4000.0, 0.75, 0.03);
}

TEST(Sampler, TemperatureSharpensOrFlattensTheDistribution) {
  SamplingParams cold = seeded();
  cold.temperature = 0.25;  // 0.25:0.75 becomes 1:81
  EXPECT_NEAR(histogram(cold, logits_of({0.25, 0.75}), 4000).at(1) / 4000.0, 81.0 / 82, 0.01);
  SamplingParams hot = seeded();
  hot.temperature = 4.0;  // 0.25^(1/4) : 0.75^(1/4) = 0.43 : 0.57
  const double p_hot = std::pow(0.75, 0.25) / (std::pow(0.75, 0.25) + std::pow(0.25, 0.25));
  EXPECT_NEAR(histogram(hot, logits_of({0.25, 0.75}), 4000).at(1) / 4000.0, p_hot, 0.03);
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  SamplingParams p = seeded();
  p.top_k = 3;
  const auto counts = histogram(p, std::vector<float>(10, 1.0f), 600);
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& [id, n] : counts) EXPECT_LT(id, 3);
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = seeded();
  p.top_p = 0.75;
  auto counts = histogram(p, logits, 2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts.at(0) / 2000.0, 0.5 / 0.8, 0.04);
  p.top_p = 0.85;
  counts = histogram(p, logits, 2000);
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts.count(3), 0u);
}

TEST(Sampler, TopPOverALargeFlatVocabularyCutsAtTheRightDepth) {
  // 10000 equal tokens: top_p 0.5 keeps the first 5000 (ties by id), deeper than the first sort.
  SamplingParams p = seeded();
  p.top_p = 0.5;
  const auto counts = histogram(p, std::vector<float>(10000, 0.0f), 300);
  int32_t highest = 0;
  for (const auto& [id, n] : counts) highest = std::max(highest, id);
  EXPECT_LT(highest, 5000);
  EXPECT_GT(highest, 4500);
}

TEST(Sampler, MinPDropsTokensUnderAFractionOfTheTopProbability) {
  SamplingParams p = seeded();
  p.min_p = 0.4;  // threshold 0.2
  const auto counts = histogram(p, logits_of({0.5, 0.3, 0.15, 0.05}), 2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts.count(2), 0u);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfSeenTokens) {
  SamplingParams p = seeded();
  p.temperature = 0.0;
  p.repetition_penalty = 2.0;
  Sampler sampler(p);
  const std::vector<int32_t> seen = {0};
  // 2.0 -> 1.0 < 1.9
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.9f}, seen, {}).id, 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.9f}, {}, {}).id, 0);
  // -1.0 -> -2.0 < -1.5; the penalty counts generated tokens too
  EXPECT_EQ(sampler.sample(std::vector<float>{-1.0f, -1.5f}, {}, seen).id, 1);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountOnlyGeneratedTokens) {
  SamplingParams presence = seeded();
  presence.temperature = 0.0;
  presence.presence_penalty = 0.5;
  Sampler a(presence);
  const std::vector<float> logits = {1.0f, 0.8f};
  const std::vector<int32_t> once = {0};
  EXPECT_EQ(a.sample(logits, {}, once).id, 1);
  EXPECT_EQ(a.sample(logits, once, {}).id, 0);  // in the prompt only: no penalty

  SamplingParams frequency = seeded();
  frequency.temperature = 0.0;
  frequency.frequency_penalty = 0.15;
  Sampler b(frequency);
  const std::vector<int32_t> twice = {0, 0};
  EXPECT_EQ(b.sample(logits, {}, once).id, 0);   // 1.0 - 0.15 > 0.8
  EXPECT_EQ(b.sample(logits, {}, twice).id, 1);  // 1.0 - 0.30 < 0.8
}

TEST(Sampler, ValidateNamesTheFieldOutOfRange) {
  SamplingParams p;
  p.top_p = 0.0;
  EXPECT_NE(p.validate().message().find("top_p"), std::string::npos);
  p = {};
  p.temperature = -1;
  EXPECT_NE(p.validate().message().find("temperature"), std::string::npos);
  p = {};
  p.min_p = 2;
  EXPECT_EQ(p.validate().code(), ErrorCode::kInvalidArgument);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_EQ(p.validate().code(), ErrorCode::kInvalidArgument);
  p = {};
  p.top_k = -1;
  EXPECT_EQ(p.validate().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(SamplingParams{}.validate().ok());
}

TEST(Sampler, GenerationConfigWithoutSamplingIsGreedy) {
  GenerationConfig g;
  g.do_sample = false;
  g.temperature = 0.7;
  EXPECT_EQ(SamplingParams::from_generation_config(g).temperature, 0.0);
  g.do_sample = true;
  g.top_k = 20;
  g.top_p = 0.8;
  const SamplingParams p = SamplingParams::from_generation_config(g);
  EXPECT_EQ(p.temperature, 0.7);
  EXPECT_EQ(p.top_k, 20);
  EXPECT_EQ(p.top_p, 0.8);
}

}  // namespace
}  // namespace pio::runtime
