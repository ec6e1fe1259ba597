#include "pio/runtime/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "tiny_models.h"

namespace pio::runtime {
namespace {

using testing::TempDir;

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_mkmodel_checkpoint(dir_.path(), testing::tiny_config(DType::kF32), 21);
    auto model = Qwen3Model::load(dir_.path());
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    model_ = std::move(*model);
  }

  GenerationResult generate(const GenerationRequest& request, const TokenCallback& on_token = {},
                            const std::atomic<bool>* cancel = nullptr) {
    Generator generator(*model_, testing::tiny_tokenizer());
    auto result = generator.generate(request, on_token, cancel);
    EXPECT_TRUE(result.ok()) << result.status().to_string();
    return result.ok() ? *result : GenerationResult{};
  }

  // Seeded sampling at temperature 1 gives varied text from the random tiny model.
  static GenerationRequest sampled(int64_t max_new_tokens, uint64_t seed = 11) {
    GenerationRequest r;
    r.prompt = {72, 101, 108, 108, 111};  // "Hello"
    r.sampling.temperature = 1.0;
    r.sampling.seed = seed;
    r.max_new_tokens = max_new_tokens;
    return r;
  }

  TempDir dir_;
  std::unique_ptr<Qwen3Model> model_;
};

TEST_F(GeneratorTest, GreedyAndSeededGenerationRepeatExactlyAcrossRunsAndLoads) {
  GenerationRequest greedy = sampled(24);
  greedy.sampling.temperature = 0.0;
  const GenerationResult a = generate(greedy);
  const GenerationResult b = generate(greedy);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.logprobs, b.logprobs);

  // Another model object over the same files.
  auto again = Qwen3Model::load(dir_.path());
  ASSERT_TRUE(again.ok());
  auto other = Generator(**again, testing::tiny_tokenizer()).generate(greedy);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->ids, a.ids);

  const GenerationResult s1 = generate(sampled(24, 5));
  const GenerationResult s2 = generate(sampled(24, 5));
  const GenerationResult s3 = generate(sampled(24, 6));
  EXPECT_EQ(s1.ids, s2.ids);
  EXPECT_EQ(s1.text, s2.text);
  EXPECT_NE(s1.ids, s3.ids);
}

TEST_F(GeneratorTest, StopsAtMaxTokensAndStreamsEveryToken) {
  std::vector<StreamedToken> streamed;
  const GenerationResult r =
      generate(sampled(10), [&](const StreamedToken& t) { streamed.push_back(t); });
  EXPECT_EQ(r.finish_reason, FinishReason::kMaxTokens);
  ASSERT_EQ(r.ids.size(), 10u);
  ASSERT_EQ(streamed.size(), 10u);
  std::string joined;
  for (size_t i = 0; i < streamed.size(); ++i) {
    EXPECT_EQ(streamed[i].id, r.ids[i]);
    EXPECT_EQ(streamed[i].logprob, r.logprobs[i]);
    EXPECT_LT(r.logprobs[i], 0.0f);
    joined += streamed[i].text;
  }
  EXPECT_EQ(joined, r.text);
  EXPECT_EQ(r.text, testing::tiny_tokenizer().decode(r.ids, /*skip_special_tokens=*/true));
}

TEST_F(GeneratorTest, StopsAtTheFirstEosTokenWhichAddsNoText) {
  const GenerationResult free_run = generate(sampled(40));
  ASSERT_EQ(free_run.ids.size(), 40u);
  // Make a token from the middle of the free run an eos id: generation ends at its first use.
  const int32_t eos = free_run.ids[20];
  const auto first = static_cast<size_t>(std::find(free_run.ids.begin(), free_run.ids.end(), eos) -
                                         free_run.ids.begin());
  GenerationRequest request = sampled(40);
  request.eos_ids = {eos};
  const GenerationResult r = generate(request);
  EXPECT_EQ(r.finish_reason, FinishReason::kEos);
  ASSERT_EQ(r.ids.size(), first + 1);
  EXPECT_TRUE(std::equal(r.ids.begin(), r.ids.end(), free_run.ids.begin()));
  const std::vector<int32_t> before_eos(r.ids.begin(), r.ids.end() - 1);
  EXPECT_EQ(r.text, testing::tiny_tokenizer().decode(before_eos, true));
}

TEST_F(GeneratorTest, StopsAtAStopStringAndCutsTheTextBeforeIt) {
  const GenerationResult free_run = generate(sampled(60));
  ASSERT_GE(free_run.text.size(), 12u) << free_run.text;
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  const size_t at = free_run.text.find(stop);

  GenerationRequest request = sampled(60);
  request.stop_strings = {"never appears \x01", stop};
  std::string streamed;
  const GenerationResult r = generate(request, [&](const StreamedToken& t) { streamed += t.text; });
  EXPECT_EQ(r.finish_reason, FinishReason::kStopString);
  EXPECT_EQ(r.stop_string, stop);
  EXPECT_EQ(r.text, free_run.text.substr(0, at));
  EXPECT_EQ(streamed, r.text);
  EXPECT_LT(r.ids.size(), free_run.ids.size());
  EXPECT_TRUE(std::equal(r.ids.begin(), r.ids.end(), free_run.ids.begin()));
  // The last token completed the stop string.
  const std::string through_last = testing::tiny_tokenizer().decode(r.ids, true);
  EXPECT_NE(through_last.find(stop), std::string::npos);
  const std::vector<int32_t> without_last(r.ids.begin(), r.ids.end() - 1);
  EXPECT_EQ(testing::tiny_tokenizer().decode(without_last, true).find(stop), std::string::npos);
}

TEST_F(GeneratorTest, AResumedRunStreamsExactlyWhatTheUninterruptedRunStreamedAfterItsTokens) {
  GenerationRequest greedy = sampled(40);
  greedy.sampling.temperature = 0.0;
  GenerationRequest with_stop = sampled(60);
  {
    const GenerationResult free_run = generate(with_stop);
    ASSERT_GE(free_run.text.size(), 12u) << free_run.text;
    with_stop.stop_strings = {free_run.text.substr(free_run.text.size() / 2, 3)};
  }
  for (const GenerationRequest& request : {greedy, sampled(40), with_stop}) {
    std::vector<StreamedToken> whole;
    const GenerationResult uninterrupted =
        generate(request, [&](const StreamedToken& t) { whole.push_back(t); });
    const size_t n = uninterrupted.ids.size();
    ASSERT_GE(n, 4u);
    for (size_t k : {size_t{0}, size_t{1}, n / 3, n / 2, n - 1, n}) {
      SCOPED_TRACE("resumed after " + std::to_string(k) + " of " + std::to_string(n));
      GenerationRequest resumed = request;
      resumed.resume.assign(uninterrupted.ids.begin(), uninterrupted.ids.begin() + k);
      std::vector<StreamedToken> rest;
      const GenerationResult r =
          generate(resumed, [&](const StreamedToken& t) { rest.push_back(t); });
      ASSERT_EQ(rest.size(), n - k);
      std::string expected_text, rest_text;
      for (size_t i = k; i < n; ++i) {
        EXPECT_EQ(rest[i - k].id, whole[i].id);
        expected_text += whole[i].text;
        rest_text += rest[i - k].text;
      }
      // Text held back at the resume point (a partial character, a possible stop string) comes
      // out after it exactly as it did in the uninterrupted run.
      EXPECT_EQ(rest_text, expected_text);
      EXPECT_EQ(r.ids, uninterrupted.ids);
      EXPECT_EQ(r.text, uninterrupted.text);
      EXPECT_EQ(r.finish_reason, uninterrupted.finish_reason);
      EXPECT_EQ(r.stop_string, uninterrupted.stop_string);
    }
  }
}

TEST_F(GeneratorTest, ACancelFlagStopsGenerationMidStream) {
  std::atomic<bool> cancel{false};
  int tokens = 0;
  const GenerationResult r = generate(
      sampled(100),
      [&](const StreamedToken&) {
        if (++tokens == 5) cancel.store(true);
      },
      &cancel);
  EXPECT_EQ(r.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r.ids.size(), 5u);
  EXPECT_EQ(tokens, 5);
}

TEST_F(GeneratorTest, RefusesAnEmptyPromptAndBadSamplingValues) {
  Generator generator(*model_, testing::tiny_tokenizer());
  GenerationRequest empty = sampled(4);
  empty.prompt.clear();
  EXPECT_EQ(generator.generate(empty).status().code(), ErrorCode::kInvalidArgument);
  GenerationRequest bad = sampled(4);
  bad.sampling.top_p = 1.5;
  const auto refused = generator.generate(bad);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("top_p"), std::string::npos);
  GenerationRequest too_long = sampled(4);
  too_long.prompt.assign(512, 65);
  EXPECT_EQ(generator.generate(too_long).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace pio::runtime
