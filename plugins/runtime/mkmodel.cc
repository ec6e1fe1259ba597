#include "pio/runtime/mkmodel.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <system_error>
#include <vector>

#include "internal/checkpoint_json.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/checkpoint_expectation.h"
#include "pio/runtime/safetensors_writer.h"

namespace pio::runtime {
namespace {

namespace fs = std::filesystem;

constexpr double kWeightStddev = 0.02;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a64(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// Normal(0, 1) pairs by Box-Muller over a splitmix64 stream.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : state_(seed) {}

  float next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    // u1 in (0, 1]: never 0, so the log is finite.
    const double u1 = static_cast<double>((splitmix64(state_) >> 11) + 1) * 0x1.0p-53;
    const double u2 = static_cast<double>(splitmix64(state_) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * std::numbers::pi * u2;
    spare_ = static_cast<float>(r * std::sin(angle));
    has_spare_ = true;
    return static_cast<float>(r * std::cos(angle));
  }

 private:
  uint64_t state_;
  float spare_ = 0;
  bool has_spare_ = false;
};

// Round to nearest even, as torch's float -> bfloat16 conversion does for finite values.
uint16_t to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

bool is_norm_weight(std::string_view name) { return name.ends_with("norm.weight"); }

void store(float value, DType dtype, std::byte* out) {
  if (dtype == DType::kBF16) {
    const uint16_t half = to_bf16(value);
    std::memcpy(out, &half, sizeof half);
  } else {
    PIO_CHECK(dtype == DType::kF32);
    std::memcpy(out, &value, sizeof value);
  }
}

void fill_random(const TensorSpec& spec, std::span<std::byte> out, uint64_t seed, bool tied) {
  const size_t element = dtype_size(spec.dtype);
  const size_t count = out.size() / element;
  if (is_norm_weight(spec.name)) {
    for (size_t i = 0; i < count; ++i) store(1.0f, spec.dtype, out.data() + i * element);
    return;
  }
  // A tied head's copy is the embedding table, byte for byte.
  const std::string_view stream_name = tied && spec.name == "lm_head.weight"
                                           ? "model.embed_tokens.weight"
                                           : std::string_view(spec.name);
  uint64_t stream_seed = seed ^ fnv1a64(stream_name);
  NormalStream normal(splitmix64(stream_seed));
  for (size_t i = 0; i < count; ++i) {
    store(static_cast<float>(kWeightStddev * normal.next()), spec.dtype, out.data() + i * element);
  }
}

Status write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return internal_error(fmt::format("could not write \"{}\"", path.string()));
  return ok_status();
}

Status remove_stale_weights(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool shard = name.starts_with("model-") && name.ends_with(".safetensors") &&
                       name.find("-of-") != std::string::npos;
    if (name == kSingleSafetensorsName || name == kSafetensorsIndexName || shard) {
      fs::remove(entry.path(), ec);
      if (ec) return errno_status(fmt::format("remove \"{}\"", entry.path().string()), ec.value());
    }
  }
  if (ec) return errno_status(fmt::format("list \"{}\"", dir.string()), ec.value());
  return ok_status();
}

Status copy_tokenizer(const fs::path& from, const fs::path& to) {
  for (std::string_view name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::error_code ec;
    const fs::path source = from / name;
    if (!fs::exists(source, ec)) {
      if (name == "tokenizer.json") {
        return not_found_error(
            fmt::format("--tokenizer-dir: \"{}\" does not exist", source.string()));
      }
      continue;
    }
    fs::copy_file(source, to / name, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return errno_status(fmt::format("copy \"{}\" to \"{}\"", source.string(), to.string()),
                          ec.value());
    }
  }
  return ok_status();
}

// Splits `tensors` (in checkpoint order) into `shards` runs of about equal bytes.
std::vector<std::vector<TensorSpec>> split_into_shards(const std::vector<TensorSpec>& tensors,
                                                       int64_t shards) {
  uint64_t total = 0;
  for (const TensorSpec& t : tensors) total += t.byte_length();
  std::vector<std::vector<TensorSpec>> out(static_cast<size_t>(shards));
  uint64_t done = 0;
  for (const TensorSpec& t : tensors) {
    // The shard whose share of the bytes this tensor's midpoint falls in.
    const uint64_t middle = done + t.byte_length() / 2;
    size_t index = total == 0 ? 0
                              : static_cast<size_t>(static_cast<unsigned __int128>(middle) *
                                                    static_cast<uint64_t>(shards) / total);
    index = std::min(index, out.size() - 1);
    out[index].push_back(t);
    done += t.byte_length();
  }
  // A shard left empty (more shards asked for than there are tensors) would be a file the index
  // never names: drop it, and let the file names count the shards actually written.
  std::erase_if(out, [](const std::vector<TensorSpec>& shard) { return shard.empty(); });
  return out;
}

Qwen3Config qwen3_shape(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                        int64_t kv_heads, int64_t max_positions, double rope_theta) {
  Qwen3Config c;
  c.vocab_size = 151936;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 128;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = rope_theta;
  c.tie_word_embeddings = true;
  c.dtype = DType::kBF16;
  c.bos_token_ids = {151643};
  c.eos_token_ids = {151645};
  return c;
}

GenerationConfig qwen3_generation(double temperature, int64_t top_k, double top_p) {
  GenerationConfig g;
  g.bos_token_id = 151643;
  g.pad_token_id = 151643;
  g.do_sample = true;
  g.eos_token_ids = {151645, 151643};
  g.temperature = temperature;
  g.top_k = top_k;
  g.top_p = top_p;
  return g;
}

Result<int64_t> parse_int(std::string_view flag, std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return invalid_argument_error(fmt::format("{}: \"{}\" is not an integer", flag, text));
  }
  return value;
}

Result<double> parse_double(std::string_view flag, std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return invalid_argument_error(fmt::format("{}: \"{}\" is not a number", flag, text));
  }
  return value;
}

// Drops ids the (possibly shrunk) vocabulary does not have.
void keep_ids_below(int64_t vocab, std::vector<int64_t>& ids) {
  std::erase_if(ids, [vocab](int64_t id) { return id >= vocab; });
}
void keep_id_below(int64_t vocab, std::optional<int64_t>& id) {
  if (id && *id >= vocab) id.reset();
}

}  // namespace

Result<MkmodelOptions> mkmodel_preset(std::string_view name) {
  MkmodelOptions o;
  if (name == "tiny") {
    o.config = qwen3_shape(32, 64, 2, 4, 2, 40960, 1e6);
    o.config.head_dim = 16;
    o.generation = qwen3_generation(0.6, 20, 0.95);
  } else if (name == "qwen3-0.6b") {
    o.config = qwen3_shape(1024, 3072, 28, 16, 8, 40960, 1e6);
    o.generation = qwen3_generation(0.6, 20, 0.95);
  } else if (name == "qwen3-4b") {
    o.config = qwen3_shape(2560, 9728, 36, 32, 8, 262144, 5e6);
    o.generation = qwen3_generation(0.7, 20, 0.8);
  } else {
    return invalid_argument_error(
        fmt::format("--preset: \"{}\" is not one of tiny, qwen3-0.6b, qwen3-4b", name));
  }
  return o;
}

std::string mkmodel_usage() {
  return R"(usage: pio-mkmodel --out DIR [options]

Writes a Hugging Face-layout Qwen3 checkpoint with seeded random weights: config.json,
model.safetensors (or shards and model.safetensors.index.json), generation_config.json.

  --out DIR                    output directory (created; old weight files in it are replaced)
  --preset NAME                tiny (default: 2 layers, hidden 32, vocab 151936),
                               qwen3-0.6b, qwen3-4b (the published shapes)
  --config FILE                take the model shape from an existing config.json instead
  --dtype bf16|f32             weight dtype (default bf16, or f32 when --config says float32)
  --seed N                     weights are a function of the seed and the tensor name (default 0)
  --shards N                   write N shards and an index instead of one file (default 1)
  --vocab-size N  --hidden-size N  --intermediate-size N  --layers N
  --heads N  --kv-heads N  --head-dim N  --max-position-embeddings N
  --rope-theta X  --rms-norm-eps X
                               override one field of the preset (token ids at or above the
                               vocabulary size are left out of the configs)
  --tied | --untied            tie lm_head to the embeddings or not (default: tied)
  --lm-head-copy               with tied embeddings, still write lm_head.weight (a byte copy of
                               the embedding table, as the published Qwen3-0.6B file has)
  --tokenizer-dir DIR          copy tokenizer.json and tokenizer_config.json from DIR
  --help                       this text
)";
}

Result<MkmodelOptions> parse_mkmodel_args(std::span<const std::string_view> args) {
  // Split "--flag=value" and "--flag value" into pairs; switches take no value.
  static const std::vector<std::string_view> kSwitches = {"--tied", "--untied", "--lm-head-copy"};
  std::vector<std::pair<std::string_view, std::string_view>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!arg.starts_with("--")) {
      return invalid_argument_error(fmt::format("unexpected argument \"{}\"", arg));
    }
    if (std::find(kSwitches.begin(), kSwitches.end(), arg) != kSwitches.end()) {
      flags.emplace_back(arg, "");
    } else if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      flags.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      flags.emplace_back(arg, args[++i]);
    } else {
      return invalid_argument_error(fmt::format("{} needs a value", arg));
    }
  }

  MkmodelOptions o;
  std::optional<std::string_view> preset, config_file;
  for (const auto& [flag, value] : flags) {
    if (flag == "--preset") preset = value;
    if (flag == "--config") config_file = value;
  }
  if (preset && config_file) {
    return invalid_argument_error("--preset and --config are exclusive");
  }
  PIO_ASSIGN_OR_RETURN(o, mkmodel_preset(preset.value_or("tiny")));
  if (config_file) {
    PIO_ASSIGN_OR_RETURN(nlohmann::json text, read_checkpoint_json(fs::path(*config_file)));
    PIO_ASSIGN_OR_RETURN(o.config, parse_qwen3_config(text.dump(), *config_file));
    if (!o.config.dtype || (*o.config.dtype != DType::kBF16 && *o.config.dtype != DType::kF32)) {
      o.config.dtype = DType::kBF16;
    }
  }

  for (const auto& entry : flags) {
    const std::string_view flag = entry.first;
    const std::string_view value = entry.second;
    auto size_field = [&](int64_t& field) -> Status {
      PIO_ASSIGN_OR_RETURN(field, parse_int(flag, value));
      return ok_status();
    };
    auto real_field = [&](double& field) -> Status {
      PIO_ASSIGN_OR_RETURN(field, parse_double(flag, value));
      return ok_status();
    };
    Qwen3Config& c = o.config;
    if (flag == "--preset" || flag == "--config") continue;
    if (flag == "--out") {
      if (value.empty()) return invalid_argument_error("--out: empty path");
      o.out_dir = fs::path(value);
    } else if (flag == "--dtype") {
      if (value == "bf16") {
        c.dtype = DType::kBF16;
      } else if (value == "f32") {
        c.dtype = DType::kF32;
      } else {
        return invalid_argument_error(fmt::format("--dtype: \"{}\" is not bf16 or f32", value));
      }
    } else if (flag == "--seed") {
      PIO_ASSIGN_OR_RETURN(int64_t seed, parse_int(flag, value));
      o.seed = static_cast<uint64_t>(seed);
    } else if (flag == "--shards") {
      PIO_RETURN_IF_ERROR(size_field(o.shards));
      if (o.shards < 1 || o.shards > 99999) {
        return invalid_argument_error("--shards: must be in [1, 99999]");
      }
    } else if (flag == "--vocab-size") {
      PIO_RETURN_IF_ERROR(size_field(c.vocab_size));
    } else if (flag == "--hidden-size") {
      PIO_RETURN_IF_ERROR(size_field(c.hidden_size));
    } else if (flag == "--intermediate-size") {
      PIO_RETURN_IF_ERROR(size_field(c.intermediate_size));
    } else if (flag == "--layers") {
      PIO_RETURN_IF_ERROR(size_field(c.num_hidden_layers));
    } else if (flag == "--heads") {
      PIO_RETURN_IF_ERROR(size_field(c.num_attention_heads));
    } else if (flag == "--kv-heads") {
      PIO_RETURN_IF_ERROR(size_field(c.num_key_value_heads));
    } else if (flag == "--head-dim") {
      PIO_RETURN_IF_ERROR(size_field(c.head_dim));
    } else if (flag == "--max-position-embeddings") {
      PIO_RETURN_IF_ERROR(size_field(c.max_position_embeddings));
    } else if (flag == "--rope-theta") {
      PIO_RETURN_IF_ERROR(real_field(c.rope_theta));
    } else if (flag == "--rms-norm-eps") {
      PIO_RETURN_IF_ERROR(real_field(c.rms_norm_eps));
    } else if (flag == "--tied") {
      c.tie_word_embeddings = true;
    } else if (flag == "--untied") {
      c.tie_word_embeddings = false;
    } else if (flag == "--lm-head-copy") {
      o.lm_head_copy = true;
    } else if (flag == "--tokenizer-dir") {
      o.tokenizer_dir = fs::path(value);
    } else {
      return invalid_argument_error(fmt::format("unknown option \"{}\"", flag));
    }
  }
  if (o.out_dir.empty()) return invalid_argument_error("--out DIR is required");

  keep_ids_below(o.config.vocab_size, o.config.bos_token_ids);
  keep_ids_below(o.config.vocab_size, o.config.eos_token_ids);
  keep_ids_below(o.config.vocab_size, o.generation.eos_token_ids);
  keep_id_below(o.config.vocab_size, o.generation.bos_token_id);
  keep_id_below(o.config.vocab_size, o.generation.pad_token_id);
  // The config must be one the runtime itself accepts.
  PIO_RETURN_IF_ERROR(
      parse_qwen3_config(qwen3_config_to_json(o.config), "the requested model").status());
  return o;
}

Result<MkmodelSummary> write_random_checkpoint(const MkmodelOptions& o) {
  PIO_CHECK(o.config.dtype.has_value());
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return errno_status(fmt::format("create \"{}\"", o.out_dir.string()), ec.value());
  PIO_RETURN_IF_ERROR(remove_stale_weights(o.out_dir));

  std::vector<TensorSpec> tensors;
  for (const ExpectedTensor& e : qwen3_dense_tensors(o.config, *o.config.dtype)) {
    if (e.optional && !o.lm_head_copy) continue;
    tensors.push_back({e.name, e.dtype, e.shape});
  }
  const TensorFill fill = [seed = o.seed, tied = o.config.tie_word_embeddings](
                              const TensorSpec& spec, std::span<std::byte> out) {
    fill_random(spec, out, seed, tied);
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};

  MkmodelSummary summary;
  summary.tensors = static_cast<int64_t>(tensors.size());
  if (o.shards == 1) {
    PIO_ASSIGN_OR_RETURN(summary.weight_bytes, write_safetensors(o.out_dir / kSingleSafetensorsName,
                                                                 tensors, metadata, fill));
  } else {
    const std::vector<std::vector<TensorSpec>> shards = split_into_shards(tensors, o.shards);
    nlohmann::json weight_map = nlohmann::json::object();
    uint64_t total_size = 0;
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name =
          fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      PIO_ASSIGN_OR_RETURN(uint64_t bytes,
                           write_safetensors(o.out_dir / name, shards[i], metadata, fill));
      summary.weight_bytes += bytes;
      for (const TensorSpec& t : shards[i]) {
        weight_map[t.name] = name;
        total_size += t.byte_length();
      }
    }
    const nlohmann::ordered_json index = {{"metadata", {{"total_size", total_size}}},
                                          {"weight_map", weight_map}};
    PIO_RETURN_IF_ERROR(write_text(o.out_dir / kSafetensorsIndexName, index.dump(2) + "\n"));
  }
  PIO_RETURN_IF_ERROR(write_text(o.out_dir / "config.json", qwen3_config_to_json(o.config)));
  PIO_RETURN_IF_ERROR(
      write_text(o.out_dir / "generation_config.json", generation_config_to_json(o.generation)));
  if (o.tokenizer_dir) PIO_RETURN_IF_ERROR(copy_tokenizer(*o.tokenizer_dir, o.out_dir));
  return summary;
}

}  // namespace pio::runtime
