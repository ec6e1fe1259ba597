#include "tiny_models.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "pio/runtime/checkpoint_expectation.h"
#include "pio/runtime/mkmodel.h"
#include "pio/runtime/safetensors_writer.h"

namespace pio::runtime::testing {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "pio-rt-torch-XXXXXX").string();
  PIO_CHECK(mkdtemp(pattern.data()) != nullptr);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Qwen3Config tiny_config(DType dtype, bool tied) {
  Qwen3Config c;
  c.vocab_size = 128;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  c.dtype = dtype;
  c.eos_token_ids = {1};
  return c;
}

void write_mkmodel_checkpoint(const std::filesystem::path& dir, const Qwen3Config& config,
                              uint64_t seed) {
  MkmodelOptions options;
  options.out_dir = dir;
  options.config = config;
  options.seed = seed;
  const auto written = write_random_checkpoint(options);
  ASSERT_TRUE(written.ok()) << written.status().to_string();
}

void write_random_norm_checkpoint(const std::filesystem::path& dir, const Qwen3Config& config,
                                  uint64_t seed) {
  PIO_CHECK(config.dtype == DType::kF32);
  std::vector<TensorSpec> specs;
  for (const ExpectedTensor& e : qwen3_dense_tensors(config, DType::kF32)) {
    if (e.optional) continue;
    specs.push_back({e.name, e.dtype, e.shape});
  }
  const TensorFill fill = [seed](const TensorSpec& spec, std::span<std::byte> out) {
    uint64_t state = seed ^ std::hash<std::string>{}(spec.name);
    const bool norm = spec.shape.size() == 1;
    for (size_t i = 0; i < out.size() / sizeof(float); ++i) {
      // splitmix64 -> uniform [0, 1)
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      const double u = static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
      const float value = norm ? static_cast<float>(0.5 + u) : static_cast<float>(0.4 * u - 0.2);
      std::memcpy(out.data() + i * sizeof(float), &value, sizeof value);
    }
  };
  std::filesystem::create_directories(dir);
  const auto written = write_safetensors(dir / "model.safetensors", specs, {}, fill);
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  std::ofstream(dir / "config.json") << qwen3_config_to_json(config);
}

Tokenizer tiny_tokenizer() {
  std::string vocab = "\"\\u0120\": 32";  // "Ġ", the byte-level form of a space
  for (int b = 33; b <= 126; ++b) {
    std::string token(1, static_cast<char>(b));
    if (b == '"' || b == '\\') token = "\\" + token;
    vocab += ", \"" + token + "\": " + std::to_string(b);
  }
  const std::string json = R"({
    "added_tokens": [{"id": 1, "content": "<|end|>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {)" +
                           vocab + R"(}, "merges": []}
  })";
  auto tokenizer = Tokenizer::from_json(json);
  PIO_CHECK(tokenizer.ok());
  return *tokenizer;
}

}  // namespace pio::runtime::testing
