#pragma once
// Reading the small JSON files of a checkpoint directory (config.json, generation_config.json,
// model.safetensors.index.json): untrusted, so size-limited and parsed strictly.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

#include "pio/ipc/status.h"

namespace pio::runtime {

// Larger than any real config or index (the 30B MoE index is about 2 MiB).
inline constexpr uint64_t kMaxCheckpointJsonBytes = 64ull << 20;

// Reads and parses `path`. A missing file is not_found; every error names the path.
Result<nlohmann::json> read_checkpoint_json(const std::filesystem::path& path);

// Parses `text`; `label` names it in errors.
Result<nlohmann::json> parse_checkpoint_json(std::string_view text, std::string_view label);

}  // namespace pio::runtime
