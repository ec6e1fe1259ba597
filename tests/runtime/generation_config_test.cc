#include "pio/runtime/generation_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "checkpoint_test_files.h"

namespace pio::runtime {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// generation_config.json of Qwen/Qwen3-0.6B.
constexpr std::string_view kQwen3_0_6B = R"({
  "bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
  "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
  "transformers_version": "4.51.0"
})";

Status parse_status(std::string_view text) {
  return parse_generation_config(text, "g.json").status();
}

TEST(GenerationConfig, ParsesThePublishedQwen3_0_6BFile) {
  Result<GenerationConfig> g = parse_generation_config(kQwen3_0_6B, "g.json");
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_TRUE(g->do_sample);
  EXPECT_DOUBLE_EQ(g->temperature, 0.6);
  EXPECT_EQ(g->top_k, 20);
  EXPECT_DOUBLE_EQ(g->top_p, 0.95);
  EXPECT_DOUBLE_EQ(g->min_p, 0.0);
  EXPECT_DOUBLE_EQ(g->repetition_penalty, 1.0);
  EXPECT_THAT(g->eos_token_ids, ElementsAre(151645, 151643));
  EXPECT_EQ(g->bos_token_id, 151643);
  EXPECT_EQ(g->pad_token_id, 151643);
}

TEST(GenerationConfig, AbsentAndNullFieldsKeepTheTransformersDefaults) {
  Result<GenerationConfig> g = parse_generation_config(
      R"({"temperature": null, "eos_token_id": 7, "min_p": 0.05})", "g.json");
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_FALSE(g->do_sample);
  EXPECT_DOUBLE_EQ(g->temperature, 1.0);
  EXPECT_EQ(g->top_k, 50);
  EXPECT_DOUBLE_EQ(g->top_p, 1.0);
  EXPECT_DOUBLE_EQ(g->min_p, 0.05);
  EXPECT_THAT(g->eos_token_ids, ElementsAre(7));
  EXPECT_FALSE(g->max_new_tokens.has_value());
}

TEST(GenerationConfig, OutOfRangeOrMistypedFieldsAreNamed) {
  EXPECT_THAT(parse_status(R"({"temperature": -1})").message(),
              AllOf(HasSubstr("g.json"), HasSubstr("\"temperature\"")));
  EXPECT_THAT(parse_status(R"({"temperature": "hot"})").message(), HasSubstr("\"temperature\""));
  EXPECT_TRUE(parse_generation_config(R"({"temperature": 0})", "g.json").ok());
  EXPECT_THAT(parse_status(R"({"top_p": 1.5})").message(), HasSubstr("\"top_p\""));
  EXPECT_THAT(parse_status(R"({"min_p": -0.1})").message(), HasSubstr("\"min_p\""));
  EXPECT_THAT(parse_status(R"({"top_k": -3})").message(), HasSubstr("\"top_k\""));
  EXPECT_THAT(parse_status(R"({"top_k": 2.5})").message(), HasSubstr("\"top_k\""));
  EXPECT_THAT(parse_status(R"({"repetition_penalty": 0})").message(),
              HasSubstr("\"repetition_penalty\""));
  EXPECT_THAT(parse_status(R"({"do_sample": "yes"})").message(), HasSubstr("\"do_sample\""));
  EXPECT_THAT(parse_status(R"({"eos_token_id": [1, "x"]})").message(),
              HasSubstr("\"eos_token_id\""));
  EXPECT_THAT(parse_status("[]").message(), HasSubstr("not a JSON object"));
}

TEST(GenerationConfig, MissingFileGivesTheDefaultsAndABrokenOneAnError) {
  testing::TempDir dir;
  Result<GenerationConfig> defaults = load_generation_config(dir.path());
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->do_sample);
  EXPECT_TRUE(defaults->eos_token_ids.empty());
  testing::write_file(dir / "generation_config.json", "{\"top_p\": 2}");
  Result<GenerationConfig> broken = load_generation_config(dir.path());
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.status().message(),
              AllOf(HasSubstr("generation_config.json"), HasSubstr("\"top_p\"")));
}

TEST(GenerationConfig, WrittenConfigReadsBackEqual) {
  GenerationConfig g;
  g.do_sample = true;
  g.temperature = 0.7;
  g.top_k = 20;
  g.top_p = 0.8;
  g.min_p = 0.01;
  g.repetition_penalty = 1.05;
  g.max_new_tokens = 128;
  g.eos_token_ids = {151645, 151643};
  g.pad_token_id = 151643;
  Result<GenerationConfig> again = parse_generation_config(generation_config_to_json(g), "g");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->do_sample, g.do_sample);
  EXPECT_EQ(again->temperature, g.temperature);
  EXPECT_EQ(again->top_k, g.top_k);
  EXPECT_EQ(again->top_p, g.top_p);
  EXPECT_EQ(again->min_p, g.min_p);
  EXPECT_EQ(again->repetition_penalty, g.repetition_penalty);
  EXPECT_EQ(again->max_new_tokens, g.max_new_tokens);
  EXPECT_EQ(again->eos_token_ids, g.eos_token_ids);
  EXPECT_EQ(again->pad_token_id, g.pad_token_id);
  EXPECT_FALSE(again->bos_token_id.has_value());
}

}  // namespace
}  // namespace pio::runtime
