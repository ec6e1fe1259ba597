#pragma once
// Qwen3Config: the fields of a Qwen3 dense `config.json` the runtime needs, parsed strictly.
//
// Accepts both styles found in the wild: transformers 4.x (`rope_theta` + `rope_scaling`,
// `torch_dtype`) and 5.x (`rope_parameters` {"rope_type", "rope_theta"}, `dtype`). What a caller
// gets wrong: `head_dim` is its own field and is NOT hidden_size / num_attention_heads
// (Qwen3-0.6B: 128 vs 64), so it is required rather than derived. Features the runtime does not
// implement (rope scaling, attention bias, sliding window, other activations) are refused with
// an error naming the field instead of being ignored.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

// Upper bound on every size field; far above any real model, low enough that products of a few
// sizes cannot overflow 64 bits.
inline constexpr int64_t kMaxConfigDimension = int64_t{1} << 24;

struct Qwen3Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  // The weights' dtype as the config states it; nullopt when it names none.
  std::optional<DType> dtype;
  // `bos_token_id` / `eos_token_id` may be an int or a list; empty when absent or null.
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
};

// Parses config.json text; `label` (usually the path) names it in every error.
Result<Qwen3Config> parse_qwen3_config(std::string_view json_text, std::string_view label);

// Reads and parses `directory`/config.json.
Result<Qwen3Config> load_qwen3_config(const std::filesystem::path& directory);

// config.json text for `config` in the transformers 4.x style of the published Qwen3 files
// (`torch_dtype`, `rope_theta`, `rope_scaling: null`); parse_qwen3_config reads it back equal.
std::string qwen3_config_to_json(const Qwen3Config& config);

// "bfloat16" / "float16" / "float32" (the config spelling) <-> DType.
std::optional<DType> parse_config_dtype(std::string_view name);
std::string_view config_dtype_name(DType dtype);

}  // namespace pio::runtime
