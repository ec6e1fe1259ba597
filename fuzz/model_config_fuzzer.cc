// Feeds arbitrary bytes to the config.json, generation_config.json and index parsers. An accepted
// config must satisfy what the layers rely on (sizes in range, kv heads dividing heads, even
// head_dim), and writing it out must read back as a config again.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pio/ipc/check.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/generation_config.h"
#include "pio/runtime/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pio::runtime;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pio::Result<Qwen3Config> config = parse_qwen3_config(text, "fuzz/config.json");
  if (config.ok()) {
    const Qwen3Config& c = *config;
    for (int64_t v :
         {c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
          c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.max_position_embeddings}) {
      PIO_CHECK(v >= 1 && v <= kMaxConfigDimension);
    }
    PIO_CHECK(c.num_attention_heads % c.num_key_value_heads == 0);
    PIO_CHECK(c.head_dim % 2 == 0);
    PIO_CHECK(c.rms_norm_eps > 0 && c.rms_norm_eps < 1 && c.rope_theta > 0);
    for (int64_t id : c.eos_token_ids) PIO_CHECK(id >= 0 && id < c.vocab_size);
    PIO_CHECK(parse_qwen3_config(qwen3_config_to_json(c), "again").ok());
  }
  pio::Result<GenerationConfig> generation = parse_generation_config(text, "fuzz/g.json");
  if (generation.ok()) {
    PIO_CHECK(generation->temperature >= 0 && generation->top_p > 0 && generation->top_p <= 1);
    PIO_CHECK(generation->top_k >= 0);
    PIO_CHECK(parse_generation_config(generation_config_to_json(*generation), "again").ok());
  }
  auto weight_map = parse_safetensors_index(text, "fuzz/model.safetensors.index.json");
  if (weight_map.ok()) {
    PIO_CHECK(!weight_map->empty());
    for (const auto& [tensor, shard] : *weight_map) {
      PIO_CHECK(shard.find('/') == std::string::npos && shard != ".." &&
                shard.ends_with(".safetensors"));
    }
  }
  return 0;
}
