#include "pio/runtime/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint_test_files.h"

namespace pio::runtime {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// config.json of Qwen/Qwen3-0.6B as published (transformers 4.x style), models.md 2.1.
constexpr std::string_view kQwen3_0_6B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
})";

// The same model as transformers 5.x writes it: `dtype`, `rope_parameters`, `layer_types`.
constexpr std::string_view kQwen3_0_6B_V5 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "bos_token_id": 151643,
  "dtype": "bfloat16", "eos_token_id": [151645, 151643], "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "intermediate_size": 3072, "layer_types": ["full_attention", "full_attention"],
  "max_position_embeddings": 40960, "model_type": "qwen3", "num_attention_heads": 16,
  "num_hidden_layers": 2, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
  "tie_word_embeddings": true, "vocab_size": 151936
})";

// kQwen3_0_6B with `field` set to `json_value` (or removed when json_value is empty).
std::string with_field(std::string_view field, std::string_view json_value) {
  nlohmann::json config = nlohmann::json::parse(kQwen3_0_6B);
  if (json_value.empty()) {
    config.erase(std::string(field));
  } else {
    config[std::string(field)] = nlohmann::json::parse(json_value);
  }
  return config.dump();
}

Status parse_status(const std::string& text) {
  return parse_qwen3_config(text, "m/config.json").status();
}

TEST(Qwen3Config, ParsesThePublishedQwen3_0_6BConfig) {
  Result<Qwen3Config> config = parse_qwen3_config(kQwen3_0_6B, "config.json");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->vocab_size, 151936);
  EXPECT_EQ(config->hidden_size, 1024);
  EXPECT_EQ(config->intermediate_size, 3072);
  EXPECT_EQ(config->num_hidden_layers, 28);
  EXPECT_EQ(config->num_attention_heads, 16);
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->head_dim, 128);  // not 1024 / 16
  EXPECT_EQ(config->max_position_embeddings, 40960);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config->rope_theta, 1e6);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->dtype, DType::kBF16);
  EXPECT_THAT(config->bos_token_ids, ElementsAre(151643));
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645));
}

TEST(Qwen3Config, ParsesTheTransformers5StyleWithRopeParametersAndDtype) {
  Result<Qwen3Config> config = parse_qwen3_config(kQwen3_0_6B_V5, "config.json");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_DOUBLE_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->dtype, DType::kBF16);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(151645, 151643));
}

TEST(Qwen3Config, RopeThetaAndRopeParametersMustAgreeWhenBothArePresent) {
  nlohmann::json config = nlohmann::json::parse(kQwen3_0_6B_V5);
  config["rope_theta"] = 1000000;
  EXPECT_TRUE(parse_qwen3_config(config.dump(), "c").ok());
  config["rope_theta"] = 10000;
  EXPECT_THAT(parse_status(config.dump()).message(),
              AllOf(HasSubstr("\"rope_theta\""), HasSubstr("rope_parameters.rope_theta")));
  config.erase("rope_theta");
  config["rope_parameters"].erase("rope_theta");
  EXPECT_THAT(parse_status(config.dump()).message(), HasSubstr("rope_parameters.rope_theta"));
}

TEST(Qwen3Config, DtypeAndTorchDtypeMustAgree) {
  nlohmann::json config = nlohmann::json::parse(kQwen3_0_6B);
  config["dtype"] = "bfloat16";
  EXPECT_TRUE(parse_qwen3_config(config.dump(), "c").ok());
  config["dtype"] = "float32";
  EXPECT_THAT(parse_status(config.dump()).message(), HasSubstr("disagrees"));
  EXPECT_THAT(parse_status(with_field("torch_dtype", R"("int8")")).message(),
              HasSubstr("\"torch_dtype\""));
  Result<Qwen3Config> none = parse_qwen3_config(with_field("torch_dtype", ""), "c");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->dtype.has_value());
}

TEST(Qwen3Config, HeadDimIsRequiredNotDerived) {
  Status s = parse_status(with_field("head_dim", ""));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("m/config.json"), HasSubstr("\"head_dim\" is required")));
}

TEST(Qwen3Config, WrongTypesAndImpossibleValuesNameTheField) {
  EXPECT_THAT(parse_status(with_field("hidden_size", R"("1024")")).message(),
              AllOf(HasSubstr("\"hidden_size\""), HasSubstr("\"1024\"")));
  EXPECT_THAT(parse_status(with_field("hidden_size", "1024.5")).message(),
              HasSubstr("\"hidden_size\""));
  EXPECT_THAT(parse_status(with_field("vocab_size", "0")).message(), HasSubstr("\"vocab_size\""));
  EXPECT_THAT(parse_status(with_field("num_hidden_layers", "-2")).message(),
              HasSubstr("\"num_hidden_layers\""));
  EXPECT_THAT(parse_status(with_field("intermediate_size", "100000000000")).message(),
              HasSubstr("\"intermediate_size\""));
  EXPECT_THAT(parse_status(with_field("rms_norm_eps", "-1e-6")).message(),
              HasSubstr("\"rms_norm_eps\""));
  EXPECT_THAT(parse_status(with_field("rope_theta", "0")).message(), HasSubstr("\"rope_theta\""));
  EXPECT_THAT(parse_status(with_field("tie_word_embeddings", "1")).message(),
              HasSubstr("\"tie_word_embeddings\""));
  EXPECT_THAT(parse_status(with_field("eos_token_id", "151936")).message(),
              HasSubstr("\"eos_token_id\""));
  EXPECT_THAT(parse_status(with_field("bos_token_id", R"([1, "x"])")).message(),
              HasSubstr("\"bos_token_id\""));
  EXPECT_THAT(parse_status(with_field("model_type", R"("qwen3_moe")")).message(),
              HasSubstr("\"model_type\""));
}

TEST(Qwen3Config, KeyValueHeadsMustDivideAttentionHeads) {
  EXPECT_THAT(parse_status(with_field("num_key_value_heads", "6")).message(),
              AllOf(HasSubstr("\"num_key_value_heads\" (6)"), HasSubstr("(16)")));
}

TEST(Qwen3Config, OddHeadDimIsRefused) {
  EXPECT_THAT(parse_status(with_field("head_dim", "127")).message(), HasSubstr("must be even"));
}

TEST(Qwen3Config, MissingKeyValueHeadsMeansOnePerAttentionHead) {
  Result<Qwen3Config> config = parse_qwen3_config(with_field("num_key_value_heads", ""), "c");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->num_key_value_heads, 16);
}

TEST(Qwen3Config, UnsupportedFeaturesAreRefusedNotIgnored) {
  Status yarn = parse_status(with_field("rope_scaling", R"({"rope_type": "yarn", "factor": 4})"));
  EXPECT_EQ(yarn.code(), ErrorCode::kUnimplemented);
  EXPECT_THAT(yarn.message(), AllOf(HasSubstr("\"rope_scaling\""), HasSubstr("yarn")));
  EXPECT_TRUE(
      parse_qwen3_config(with_field("rope_scaling", R"({"rope_type": "default"})"), "c").ok());
  EXPECT_EQ(parse_status(with_field("attention_bias", "true")).code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(parse_status(with_field("use_sliding_window", "true")).code(),
            ErrorCode::kUnimplemented);
  EXPECT_EQ(parse_status(with_field("hidden_act", R"("gelu")")).code(), ErrorCode::kUnimplemented);
  EXPECT_EQ(parse_status(with_field("layer_types", R"(["sliding_attention"])")).code(),
            ErrorCode::kUnimplemented);
}

TEST(Qwen3Config, NotJsonOrNotAnObjectIsRefused) {
  EXPECT_THAT(parse_status("{\"vocab_size\": ").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse_status("[]").message(), HasSubstr("not a JSON object"));
}

TEST(Qwen3Config, WrittenConfigReadsBackEqual) {
  Result<Qwen3Config> original = parse_qwen3_config(kQwen3_0_6B_V5, "c");
  ASSERT_TRUE(original.ok());
  Result<Qwen3Config> again = parse_qwen3_config(qwen3_config_to_json(*original), "c");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->hidden_size, original->hidden_size);
  EXPECT_EQ(again->head_dim, original->head_dim);
  EXPECT_EQ(again->num_hidden_layers, original->num_hidden_layers);
  EXPECT_EQ(again->rope_theta, original->rope_theta);
  EXPECT_EQ(again->rms_norm_eps, original->rms_norm_eps);
  EXPECT_EQ(again->dtype, original->dtype);
  EXPECT_EQ(again->tie_word_embeddings, original->tie_word_embeddings);
  EXPECT_EQ(again->eos_token_ids, original->eos_token_ids);
  EXPECT_EQ(again->bos_token_ids, original->bos_token_ids);
}

TEST(Qwen3Config, LoadReadsConfigJsonFromTheDirectory) {
  testing::TempDir dir;
  Result<Qwen3Config> missing = load_qwen3_config(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("config.json"));
  testing::write_file(dir / "config.json", with_field("hidden_size", "true"));
  Result<Qwen3Config> bad = load_qwen3_config(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              AllOf(HasSubstr((dir / "config.json").string()), HasSubstr("\"hidden_size\"")));
  testing::write_file(dir / "config.json", std::string(kQwen3_0_6B));
  Result<Qwen3Config> good = load_qwen3_config(dir.path());
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->hidden_size, 1024);
}

}  // namespace
}  // namespace pio::runtime
