#include "pio/runtime/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "checkpoint_test_files.h"
#include "pio/runtime/checkpoint_expectation.h"
#include "pio/runtime/safetensors_writer.h"

namespace pio::runtime {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempDir;

void fill_index(const TensorSpec& spec, std::span<std::byte> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::byte>((i + spec.name.size()) & 0xff);
  }
}

void write(const std::filesystem::path& path, const std::vector<TensorSpec>& specs) {
  Result<uint64_t> written = write_safetensors(path, specs, {}, fill_index);
  ASSERT_TRUE(written.ok()) << written.status().to_string();
}

// Two shards, "a" + "b" in the first and "c" in the second, with an index saying so.
void write_sharded(const TempDir& dir) {
  write(dir / "model-00001-of-00002.safetensors",
        {{"a", DType::kBF16, {4, 2}}, {"b", DType::kF32, {3}}});
  write(dir / "model-00002-of-00002.safetensors", {{"c", DType::kBF16, {5}}});
  testing::write_file(dir / "model.safetensors.index.json", R"({
    "metadata": {"total_size": 38},
    "weight_map": {"a": "model-00001-of-00002.safetensors",
                   "b": "model-00001-of-00002.safetensors",
                   "c": "model-00002-of-00002.safetensors"}})");
}

void write_index(const TempDir& dir, const nlohmann::json& weight_map) {
  testing::write_file(dir / "model.safetensors.index.json",
                      nlohmann::json{{"weight_map", weight_map}}.dump());
}

TEST(Checkpoint, OpensASingleFile) {
  TempDir dir;
  write(dir / "model.safetensors", {{"w", DType::kBF16, {2, 3}}});
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  EXPECT_FALSE(checkpoint->sharded());
  ASSERT_NE(checkpoint->find("w"), nullptr);
  EXPECT_EQ(checkpoint->find("w")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(checkpoint->tensors().size(), 1u);
}

TEST(Checkpoint, OpensShardsThroughTheIndexAndKeepsViewsValidAfterMoving) {
  TempDir dir;
  write_sharded(dir);
  Result<Checkpoint> opened = Checkpoint::open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Checkpoint checkpoint = std::move(opened).value();
  EXPECT_TRUE(checkpoint.sharded());
  EXPECT_EQ(checkpoint.files().size(), 2u);
  ASSERT_EQ(checkpoint.tensors().size(), 3u);
  const TensorView* c = checkpoint.find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_THAT(c->file, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_EQ(c->dtype, DType::kBF16);
  EXPECT_EQ(static_cast<uint8_t>(c->data[3]), 4u);  // fill_index: (3 + 1) & 0xff
  EXPECT_EQ(checkpoint.find("b")->byte_length, 12u);
}

TEST(Checkpoint, SingleFileWinsOverAnIndexAsInTransformers) {
  TempDir dir;
  write_sharded(dir);
  write(dir / "model.safetensors", {{"only", DType::kF32, {1}}});
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_FALSE(checkpoint->sharded());
  EXPECT_NE(checkpoint->find("only"), nullptr);
}

TEST(Checkpoint, DirectoryWithoutWeightsIsNotFound) {
  TempDir dir;
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_EQ(checkpoint.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(checkpoint.status().message(),
              AllOf(HasSubstr(dir.path().string()), HasSubstr("model.safetensors.index.json")));
}

TEST(Checkpoint, IndexShardNamesThatLeaveTheDirectoryAreRefused) {
  for (std::string_view shard : {"../model.safetensors", "/etc/passwd.safetensors",
                                 "sub/x.safetensors", "..", "model.bin"}) {
    TempDir dir;
    write_index(dir, {{"a", shard}});
    Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
    ASSERT_FALSE(checkpoint.ok()) << shard;
    EXPECT_EQ(checkpoint.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(checkpoint.status().message(),
                AllOf(HasSubstr("tensor \"a\""), HasSubstr("not a plain file name")));
  }
}

TEST(Checkpoint, IndexParserReturnsTheWeightMapAndNamesTheIndexInErrors) {
  Result<std::map<std::string, std::string>> map = parse_safetensors_index(
      R"({"metadata": {"total_size": 4}, "weight_map": {"a": "model-00001-of-00001.safetensors"}})",
      "i.json");
  ASSERT_TRUE(map.ok()) << map.status().to_string();
  EXPECT_EQ(map->at("a"), "model-00001-of-00001.safetensors");
  EXPECT_THAT(parse_safetensors_index(R"({"weight_map": {"a": 3}})", "i.json").status().message(),
              AllOf(HasSubstr("\"i.json\""), HasSubstr("shard of tensor \"a\" is not a string")));
  EXPECT_THAT(parse_safetensors_index(R"({"weight_map": {}})", "i.json").status().message(),
              HasSubstr("lists no tensor"));
}

TEST(Checkpoint, IndexPuttingATensorInAShardThatLacksItIsRefused) {
  TempDir dir;
  write_sharded(dir);
  write_index(dir, {{"a", "model-00001-of-00002.safetensors"},
                    {"b", "model-00001-of-00002.safetensors"},
                    {"c", "model-00001-of-00002.safetensors"}});
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(),
              AllOf(HasSubstr("tensor \"c\""), HasSubstr("does not hold it")));
}

TEST(Checkpoint, ShardHoldingATensorTheIndexDoesNotGiveItIsRefused) {
  TempDir dir;
  write_sharded(dir);
  write_index(
      dir, {{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00002-of-00002.safetensors"}});
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(),
              AllOf(HasSubstr("tensor \"b\""), HasSubstr("does not list")));
}

TEST(Checkpoint, MissingShardOrBrokenIndexIsReported) {
  TempDir dir;
  write_index(dir, {{"a", "model-00001-of-00009.safetensors"}});
  Result<Checkpoint> missing = Checkpoint::open(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("model-00001-of-00009.safetensors"));

  testing::write_file(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  Result<Checkpoint> no_map = Checkpoint::open(dir.path());
  ASSERT_FALSE(no_map.ok());
  EXPECT_THAT(no_map.status().message(), HasSubstr("\"weight_map\" is missing"));

  testing::write_file(dir / "model.safetensors.index.json", R"({"weight_map": )");
  Result<Checkpoint> not_json = Checkpoint::open(dir.path());
  ASSERT_FALSE(not_json.ok());
  EXPECT_THAT(not_json.status().message(), HasSubstr("not valid JSON"));
}

TEST(Checkpoint, CorruptShardIsReportedWithItsPath) {
  TempDir dir;
  write_sharded(dir);
  const auto shard = dir / "model-00002-of-00002.safetensors";
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 1);
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  ASSERT_FALSE(checkpoint.ok());
  EXPECT_THAT(checkpoint.status().message(),
              AllOf(HasSubstr(shard.string()), HasSubstr("tensor \"c\"")));
}

// A tiny Qwen3 config: 2 layers, hidden 8, 2 heads of 4 (q 8), 1 kv head, intermediate 12.
Qwen3Config tiny_config(bool tied) {
  Qwen3Config c;
  c.vocab_size = 16;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.tie_word_embeddings = tied;
  return c;
}

// Writes every tensor the config expects, with `change` applied to the specs first.
void write_qwen3(const TempDir& dir, const Qwen3Config& config, bool with_lm_head,
                 const std::function<void(std::vector<TensorSpec>&)>& change = {}) {
  std::vector<TensorSpec> specs;
  for (const ExpectedTensor& e : qwen3_dense_tensors(config, DType::kBF16)) {
    if (e.name == "lm_head.weight" && !with_lm_head) continue;
    specs.push_back({e.name, e.dtype, e.shape});
  }
  if (change) change(specs);
  write(dir / "model.safetensors", specs);
}

Status check(const TempDir& dir, const Qwen3Config& config) {
  Result<Checkpoint> checkpoint = Checkpoint::open(dir.path());
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  if (!checkpoint.ok()) return checkpoint.status();
  return check_checkpoint_tensors(*checkpoint, qwen3_dense_tensors(config, DType::kBF16));
}

TEST(CheckpointExpectation, Qwen3DenseTensorListMatchesThePublishedLayout) {
  Qwen3Config c = tiny_config(true);
  c.vocab_size = 151936;
  c.hidden_size = 1024;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 28;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  const std::vector<ExpectedTensor> tensors = qwen3_dense_tensors(c, DType::kBF16);
  EXPECT_EQ(tensors.size(), 311u);  // 11 per layer x 28 + embed + norm + lm_head
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ExpectedTensor& e : tensors) shapes[e.name] = e.shape;
  using Shape = std::vector<int64_t>;
  EXPECT_EQ(shapes["model.embed_tokens.weight"], (Shape{151936, 1024}));
  EXPECT_EQ(shapes["model.layers.27.self_attn.q_proj.weight"], (Shape{2048, 1024}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.k_proj.weight"], (Shape{1024, 1024}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.o_proj.weight"], (Shape{1024, 2048}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.q_norm.weight"], (Shape{128}));
  EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.weight"], (Shape{1024, 3072}));
  EXPECT_EQ(shapes["model.layers.0.post_attention_layernorm.weight"], (Shape{1024}));
  EXPECT_EQ(shapes["model.norm.weight"], (Shape{1024}));
  EXPECT_TRUE(tensors.back().optional);
  EXPECT_EQ(tensors.back().name, "lm_head.weight");
}

TEST(CheckpointExpectation, TiedLmHeadIsAcceptedPresentOrAbsent) {
  const Qwen3Config config = tiny_config(/*tied=*/true);
  TempDir with, without;
  write_qwen3(with, config, /*with_lm_head=*/true);
  write_qwen3(without, config, /*with_lm_head=*/false);
  EXPECT_TRUE(check(with, config).ok()) << check(with, config).to_string();
  EXPECT_TRUE(check(without, config).ok()) << check(without, config).to_string();
}

TEST(CheckpointExpectation, UntiedLmHeadMustBePresent) {
  const Qwen3Config config = tiny_config(/*tied=*/false);
  TempDir dir;
  write_qwen3(dir, config, /*with_lm_head=*/false);
  Status s = check(dir, config);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("tensor \"lm_head.weight\" is missing (expected [16, 8] BF16)"),
                    HasSubstr("1 problem")));
}

TEST(CheckpointExpectation, TiedLmHeadOfTheWrongShapeIsStillRefused) {
  const Qwen3Config config = tiny_config(/*tied=*/true);
  TempDir dir;
  write_qwen3(dir, config, true, [](std::vector<TensorSpec>& specs) {
    specs.back().shape = {8, 16};
  });
  EXPECT_THAT(check(dir, config).message(),
              HasSubstr("tensor \"lm_head.weight\" in \"" + (dir / "model.safetensors").string() +
                        "\" is [8, 16] BF16, expected [16, 8] BF16"));
}

TEST(CheckpointExpectation, MisShapedTensorNamesBothShapes) {
  const Qwen3Config config = tiny_config(true);
  TempDir dir;
  write_qwen3(dir, config, false, [](std::vector<TensorSpec>& specs) {
    for (TensorSpec& s : specs) {
      if (s.name == "model.layers.1.self_attn.k_proj.weight") s.shape = {8, 8};
    }
  });
  EXPECT_THAT(
      check(dir, config).message(),
      HasSubstr("tensor \"model.layers.1.self_attn.k_proj.weight\" in \"" +
                (dir / "model.safetensors").string() + "\" is [8, 8] BF16, expected [4, 8] BF16"));
}

TEST(CheckpointExpectation, WrongDtypeNamesBothDtypes) {
  const Qwen3Config config = tiny_config(true);
  TempDir dir;
  write_qwen3(dir, config, false, [](std::vector<TensorSpec>& specs) {
    for (TensorSpec& s : specs) {
      if (s.name == "model.norm.weight") s.dtype = DType::kF32;
      if (s.name == "model.layers.0.mlp.up_proj.weight") s.dtype = DType::kI32;
    }
  });
  const Status s = check(dir, config);
  EXPECT_THAT(
      s.message(),
      AllOf(HasSubstr("2 problems"),
            HasSubstr("tensor \"model.norm.weight\" in \"" + (dir / "model.safetensors").string() +
                      "\" is [8] F32, expected [8] BF16"),
            HasSubstr("\"model.layers.0.mlp.up_proj.weight\" in \"" +
                      (dir / "model.safetensors").string() + "\" is [12, 8] I32")));
}

TEST(CheckpointExpectation, MissingAndExtraTensorsAreAllListed) {
  const Qwen3Config config = tiny_config(true);
  TempDir dir;
  write_qwen3(dir, config, false, [](std::vector<TensorSpec>& specs) {
    std::erase_if(specs, [](const TensorSpec& s) {
      return s.name == "model.layers.0.self_attn.q_norm.weight";
    });
    specs.push_back({"model.layers.0.self_attn.q_proj.bias", DType::kBF16, {8}});
  });
  const Status s = check(dir, config);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("2 problems"),
                    HasSubstr("tensor \"model.layers.0.self_attn.q_norm.weight\" is missing "
                              "(expected [4] BF16)"),
                    HasSubstr("tensor \"model.layers.0.self_attn.q_proj.bias\" ([8] BF16)"),
                    HasSubstr("is not part of this model")));
}

TEST(CheckpointExpectation, ManyProblemsAreCappedInTheMessage) {
  const Qwen3Config config = tiny_config(true);
  TempDir dir;
  write(dir / "model.safetensors", {{"unrelated", DType::kF32, {1}}});
  const Status s = check(dir, config);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("25 problems"), HasSubstr("and 5 more")));
  EXPECT_THAT(s.message(), Not(HasSubstr("model.norm.weight")));
}

}  // namespace
}  // namespace pio::runtime
