#pragma once
// GenerationConfig: the sampling defaults and stop ids of a checkpoint's generation_config.json.
//
// Fields absent or null keep the transformers defaults written below (greedy, temperature 1,
// top_k 50, top_p 1, no min_p, no repetition penalty). What a caller gets wrong: a checkpoint
// without generation_config.json is normal; load_generation_config then returns the defaults
// with no eos ids, and the model config's eos_token_id is the one to stop on.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::runtime {

struct GenerationConfig {
  bool do_sample = false;
  double temperature = 1.0;         // >= 0; 0 means greedy (some published files say so)
  int64_t top_k = 50;               // 0 = no top-k filter
  double top_p = 1.0;               // (0, 1]
  double min_p = 0.0;               // [0, 1]; 0 = no min-p filter
  double repetition_penalty = 1.0;  // > 0; 1 = none
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  std::vector<int64_t> eos_token_ids;  // int or list in the file
};

// Parses generation_config.json text; `label` names it in every error.
Result<GenerationConfig> parse_generation_config(std::string_view json_text,
                                                 std::string_view label);

// Reads `directory`/generation_config.json; the defaults when the file does not exist.
Result<GenerationConfig> load_generation_config(const std::filesystem::path& directory);

// generation_config.json text for `config`; parse_generation_config reads it back equal.
std::string generation_config_to_json(const GenerationConfig& config);

}  // namespace pio::runtime
