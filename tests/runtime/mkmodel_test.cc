#include "pio/runtime/mkmodel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "checkpoint_test_files.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/checkpoint_expectation.h"

namespace pio::runtime {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TempDir;

Result<MkmodelOptions> parse(std::vector<std::string_view> args) {
  return parse_mkmodel_args(args);
}

// Options for a fast tiny model in `dir` (vocabulary cut to 512) with extra flags appended.
MkmodelOptions small(const TempDir& dir, std::vector<std::string_view> extra = {}) {
  const std::string out = dir.path().string();
  std::vector<std::string_view> args = {"--out", out, "--vocab-size", "512"};
  args.insert(args.end(), extra.begin(), extra.end());
  Result<MkmodelOptions> options = parse_mkmodel_args(args);
  EXPECT_TRUE(options.ok()) << options.status().to_string();
  return options.ok() ? *options : MkmodelOptions{};
}

void make(const MkmodelOptions& options) {
  Result<MkmodelSummary> summary = write_random_checkpoint(options);
  ASSERT_TRUE(summary.ok()) << summary.status().to_string();
}

float bf16_to_float(const std::byte* p) {
  uint16_t half;
  std::memcpy(&half, p, 2);
  const uint32_t bits = static_cast<uint32_t>(half) << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

TEST(Mkmodel, SameSeedGivesIdenticalFilesAndAnotherSeedDifferentWeights) {
  TempDir a, b, c;
  make(small(a, {"--seed", "7"}));
  make(small(b, {"--seed", "7"}));
  make(small(c, {"--seed", "8"}));
  for (std::string_view name : {"model.safetensors", "config.json", "generation_config.json"}) {
    EXPECT_EQ(testing::read_file(a / name), testing::read_file(b / name)) << name;
  }
  EXPECT_NE(testing::read_file(a / "model.safetensors"),
            testing::read_file(c / "model.safetensors"));
  EXPECT_EQ(testing::read_file(a / "config.json"), testing::read_file(c / "config.json"));
}

TEST(Mkmodel, TinyPresetIsAQwen3CheckpointTheRuntimeAccepts) {
  TempDir dir;
  Result<MkmodelOptions> options = parse({"--out", dir.path().string()});
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  make(*options);
  Result<Qwen3Config> config = load_qwen3_config(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->vocab_size, 151936);
  EXPECT_EQ(config->hidden_size, 32);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_EQ(config->dtype, DType::kBF16);
  EXPECT_TRUE(config->tie_word_embeddings);
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  EXPECT_TRUE(
      check_checkpoint_tensors(*checkpoint, qwen3_dense_tensors(*config, DType::kBF16)).ok());
  EXPECT_EQ(checkpoint->find("lm_head.weight"), nullptr);
  EXPECT_LT(std::filesystem::file_size(dir / "model.safetensors"), 11u << 20);
  Result<GenerationConfig> generation = load_generation_config(dir.path());
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(generation->eos_token_ids, (std::vector<int64_t>{151645, 151643}));
}

TEST(Mkmodel, WeightsAreSmallNormalsAndNormsAreOne) {
  TempDir dir;
  make(small(dir));
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  const TensorView* embed = checkpoint->find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  double sum = 0, sum_sq = 0;
  const int64_t n = embed->numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = bf16_to_float(embed->data + 2 * i);
    sum += v;
    sum_sq += v * v;
  }
  const double mean = sum / static_cast<double>(n);
  const double stddev = std::sqrt(sum_sq / static_cast<double>(n) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(stddev, 0.02, 0.001);
  const TensorView* norm = checkpoint->find("model.layers.1.self_attn.k_norm.weight");
  ASSERT_NE(norm, nullptr);
  for (int64_t i = 0; i < norm->numel(); ++i) EXPECT_EQ(bf16_to_float(norm->data + 2 * i), 1.0f);
}

TEST(Mkmodel, ShardingDoesNotChangeAnyTensor) {
  TempDir single, sharded;
  make(small(single, {"--dtype", "f32"}));
  make(small(sharded, {"--dtype", "f32", "--shards", "3"}));
  EXPECT_FALSE(std::filesystem::exists(sharded / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(sharded / "model-00003-of-00003.safetensors"));
  Result<Checkpoint> a = Checkpoint::open(single.path());
  Result<Checkpoint> b = Checkpoint::open(sharded.path());
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().to_string();
  EXPECT_TRUE(b->sharded());
  EXPECT_EQ(b->files().size(), 3u);
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (const auto& [name, view] : a->tensors()) {
    const TensorView* other = b->find(name);
    ASSERT_NE(other, nullptr) << name;
    EXPECT_EQ(view->dtype, DType::kF32);
    ASSERT_EQ(view->byte_length, other->byte_length);
    EXPECT_EQ(std::memcmp(view->data, other->data, view->byte_length), 0) << name;
  }
}

TEST(Mkmodel, WritingShardsReplacesAStaleSingleFile) {
  TempDir dir;
  make(small(dir));
  make(small(dir, {"--shards", "2"}));
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  EXPECT_TRUE(checkpoint->sharded());
}

TEST(Mkmodel, LmHeadCopyIsTheEmbeddingTableByteForByte) {
  TempDir dir;
  make(small(dir, {"--lm-head-copy"}));
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  const TensorView* embed = checkpoint->find("model.embed_tokens.weight");
  const TensorView* head = checkpoint->find("lm_head.weight");
  ASSERT_TRUE(embed != nullptr && head != nullptr);
  ASSERT_EQ(embed->byte_length, head->byte_length);
  EXPECT_EQ(std::memcmp(embed->data, head->data, embed->byte_length), 0);
}

TEST(Mkmodel, UntiedModelGetsItsOwnLmHead) {
  TempDir dir;
  make(small(dir, {"--untied"}));
  Result<Qwen3Config> config = load_qwen3_config(dir.path());
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->tie_word_embeddings);
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  const TensorView* embed = checkpoint->find("model.embed_tokens.weight");
  const TensorView* head = checkpoint->find("lm_head.weight");
  ASSERT_TRUE(embed != nullptr && head != nullptr);
  EXPECT_NE(std::memcmp(embed->data, head->data, embed->byte_length), 0);
  EXPECT_TRUE(
      check_checkpoint_tensors(*checkpoint, qwen3_dense_tensors(*config, DType::kBF16)).ok());
}

TEST(Mkmodel, FieldOverridesReachTheConfigAndTheShapes) {
  TempDir dir;
  make(small(dir,
             {"--hidden-size=48", "--layers", "3", "--heads", "6", "--kv-heads", "3", "--head-dim",
              "8", "--intermediate-size", "40", "--rope-theta", "5e6", "--dtype", "f32"}));
  Result<Qwen3Config> config = load_qwen3_config(dir.path());
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->hidden_size, 48);
  EXPECT_EQ(config->num_hidden_layers, 3);
  EXPECT_EQ(config->num_key_value_heads, 3);
  EXPECT_DOUBLE_EQ(config->rope_theta, 5e6);
  EXPECT_EQ(config->dtype, DType::kF32);
  // Token ids beyond the 512-token vocabulary are left out rather than made invalid.
  EXPECT_TRUE(config->eos_token_ids.empty());
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_TRUE(
      check_checkpoint_tensors(*checkpoint, qwen3_dense_tensors(*config, DType::kF32)).ok());
  EXPECT_EQ(checkpoint->find("model.layers.2.self_attn.q_proj.weight")->shape,
            (std::vector<int64_t>{48, 48}));
}

TEST(Mkmodel, ConfigFileGivesTheShape) {
  TempDir source, out;
  make(small(source, {"--layers", "1", "--hidden-size", "16"}));
  const std::string config_path = (source / "config.json").string();
  Result<MkmodelOptions> options = parse({"--config", config_path, "--out", out.path().string()});
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  EXPECT_EQ(options->config.num_hidden_layers, 1);
  EXPECT_EQ(options->config.hidden_size, 16);
  EXPECT_EQ(options->config.vocab_size, 512);
}

TEST(Mkmodel, PresetsHaveThePublishedShapes) {
  Result<MkmodelOptions> small06 = mkmodel_preset("qwen3-0.6b");
  ASSERT_TRUE(small06.ok());
  const Qwen3Config& c = small06->config;
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, DType::kBF16);
  Result<MkmodelOptions> four = mkmodel_preset("qwen3-4b");
  ASSERT_TRUE(four.ok());
  EXPECT_EQ(four->config.hidden_size, 2560);
  EXPECT_EQ(four->config.num_hidden_layers, 36);
  EXPECT_DOUBLE_EQ(four->config.rope_theta, 5e6);
  EXPECT_FALSE(mkmodel_preset("llama").ok());
}

TEST(Mkmodel, BadCommandLinesAreRefusedWithTheReason) {
  EXPECT_THAT(parse({"--preset", "tiny"}).status().message(), HasSubstr("--out DIR is required"));
  EXPECT_THAT(parse({"--out", "x", "--dtype", "f16"}).status().message(), HasSubstr("--dtype"));
  EXPECT_THAT(parse({"--out", "x", "--frobnicate", "1"}).status().message(),
              HasSubstr("unknown option \"--frobnicate\""));
  EXPECT_THAT(parse({"--out", "x", "--layers"}).status().message(), HasSubstr("needs a value"));
  EXPECT_THAT(parse({"--out", "x", "--layers", "two"}).status().message(),
              HasSubstr("\"two\" is not an integer"));
  EXPECT_THAT(parse({"--out", "x", "--kv-heads", "3"}).status().message(),
              HasSubstr("\"num_key_value_heads\" (3) must divide"));
  EXPECT_THAT(parse({"--out", "x", "--shards", "0"}).status().message(), HasSubstr("--shards"));
  EXPECT_THAT(parse({"--out", "x", "--preset", "tiny", "--config", "c.json"}).status().message(),
              HasSubstr("exclusive"));
  EXPECT_THAT(parse({"stray"}).status().message(), HasSubstr("unexpected argument"));
}

TEST(Mkmodel, TokenizerFilesAreCopiedWhenAsked) {
  TempDir tokenizer, out, bare;
  testing::write_file(tokenizer / "tokenizer.json", R"({"model": {}})");
  testing::write_file(tokenizer / "tokenizer_config.json", R"({"eos_token": "x"})");
  make(small(out, {"--tokenizer-dir", tokenizer.path().string()}));
  EXPECT_EQ(testing::read_file(out / "tokenizer.json"), R"({"model": {}})");
  EXPECT_EQ(testing::read_file(out / "tokenizer_config.json"), R"({"eos_token": "x"})");

  Result<MkmodelSummary> missing =
      write_random_checkpoint(small(out, {"--tokenizer-dir", bare.path().string()}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("tokenizer.json"));
}

}  // namespace
}  // namespace pio::runtime
