#pragma once
// pio-mkmodel: writes a Hugging Face-layout Qwen3 checkpoint with seeded random weights
// (config.json, model.safetensors or shards + index, generation_config.json, and optionally the
// tokenizer files), for tests (tiny) and benchmarks (the full Qwen3-0.6B shape).
//
// Weights are N(0, 0.02) from a splitmix64 stream seeded by the seed and the tensor's name, norm
// weights are 1.0, so the same options give the same bytes on every run and a tensor's values do
// not depend on how the checkpoint is sharded. What a caller gets wrong: the output directory's
// existing model.safetensors / model-*-of-*.safetensors / index files are replaced (a stale single
// file would otherwise shadow new shards); nothing else in it is touched.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "pio/ipc/status.h"
#include "pio/runtime/generation_config.h"
#include "pio/runtime/model_config.h"

namespace pio::runtime {

struct MkmodelOptions {
  std::filesystem::path out_dir;
  Qwen3Config config;  // config.dtype is set: kBF16 or kF32
  GenerationConfig generation;
  uint64_t seed = 0;
  int64_t shards = 1;  // > 1: model-0000i-of-0000N.safetensors + model.safetensors.index.json
  // Also write lm_head.weight when the embeddings are tied (a byte copy of the embedding table,
  // as the published Qwen3-0.6B file has).
  bool lm_head_copy = false;
  std::optional<std::filesystem::path> tokenizer_dir;
};

// The presets: "tiny" (2 layers, hidden 32, the real 151936 vocabulary, bf16: about 10 MB),
// "qwen3-0.6b" and "qwen3-4b" (the published shapes, bf16), with their generation settings.
Result<MkmodelOptions> mkmodel_preset(std::string_view name);

// Parses the command line (without argv[0]); errors are invalid_argument with the reason.
Result<MkmodelOptions> parse_mkmodel_args(std::span<const std::string_view> args);
std::string mkmodel_usage();

// What write_random_checkpoint wrote.
struct MkmodelSummary {
  int64_t tensors = 0;
  uint64_t weight_bytes = 0;  // the safetensors files, headers included
};

Result<MkmodelSummary> write_random_checkpoint(const MkmodelOptions& options);

}  // namespace pio::runtime
