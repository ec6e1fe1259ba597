#include "pio/runtime/model_config.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "internal/checkpoint_json.h"

namespace pio::runtime {
namespace {

using nlohmann::json;

// Reads fields of one JSON object; each error names the field and what it holds.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  // The field, or nullptr when absent or null (both mean "use the default").
  const json* get(std::string_view field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  Status fail(std::string_view field, std::string_view what) const {
    const json* value = get(field);
    return invalid_argument_error(fmt::format("field \"{}\" {}, got {}", field, what,
                                              value == nullptr ? "nothing" : value->dump()));
  }

  Result<int64_t> size(std::string_view field, std::optional<int64_t> fallback = {}) const {
    const json* value = get(field);
    if (value == nullptr) {
      if (fallback) return *fallback;
      return fail(field, "is required");
    }
    if (!value->is_number_integer() || value->get<int64_t>() < 1 ||
        value->get<int64_t>() > kMaxConfigDimension) {
      return fail(field, fmt::format("must be an integer in [1, {}]", kMaxConfigDimension));
    }
    return value->get<int64_t>();
  }

  Result<double> positive(std::string_view field, std::optional<double> fallback) const {
    const json* value = get(field);
    if (value == nullptr) {
      if (fallback) return *fallback;
      return fail(field, "is required");
    }
    if (!value->is_number() || !std::isfinite(value->get<double>()) || value->get<double>() <= 0) {
      return fail(field, "must be a positive number");
    }
    return value->get<double>();
  }

  Result<bool> boolean(std::string_view field, bool fallback) const {
    const json* value = get(field);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) return fail(field, "must be true or false");
    return value->get<bool>();
  }

  // An int or a list of ints, each in [0, limit).
  Result<std::vector<int64_t>> token_ids(std::string_view field, int64_t limit) const {
    const json* value = get(field);
    std::vector<int64_t> ids;
    if (value == nullptr) return ids;
    auto valid = [limit](const json& id) {
      return id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < limit;
    };
    const std::string what = fmt::format("must be a token id in [0, {}) or a list of them", limit);
    if (value->is_array()) {
      for (const json& id : *value) {
        if (!valid(id)) return fail(field, what);
        ids.push_back(id.get<int64_t>());
      }
    } else {
      if (!valid(*value)) return fail(field, what);
      ids.push_back(value->get<int64_t>());
    }
    return ids;
  }

 private:
  const json& object_;
};

Result<std::optional<DType>> read_dtype(const FieldReader& fields) {
  std::optional<DType> found;
  for (std::string_view field : {"dtype", "torch_dtype"}) {
    const json* value = fields.get(field);
    if (value == nullptr) continue;
    std::optional<DType> dtype;
    if (value->is_string()) dtype = parse_config_dtype(value->get_ref<const std::string&>());
    if (!dtype) return fields.fail(field, "must be \"bfloat16\", \"float16\" or \"float32\"");
    if (found && *found != *dtype) {
      return fields.fail(field,
                         fmt::format("disagrees with \"dtype\" ({})", config_dtype_name(*found)));
    }
    found = dtype;
  }
  return found;
}

Status check_rope_type(std::string_view field, const json& rope) {
  for (std::string_view key : {"rope_type", "type"}) {
    auto it = rope.find(key);
    if (it == rope.end() || it->is_null()) continue;
    if (!it->is_string() || it->get_ref<const std::string&>() != "default") {
      return unimplemented_error(fmt::format(
          "field \"{}\": rope type {} is not supported (only \"default\" rotary embeddings)", field,
          it->dump()));
    }
  }
  return ok_status();
}

// rope_theta from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (4.x).
// A config carrying both must agree with itself.
Result<double> read_rope_theta(const FieldReader& fields) {
  if (const json* scaling = fields.get("rope_scaling")) {
    if (!scaling->is_object()) return fields.fail("rope_scaling", "must be an object or null");
    PIO_RETURN_IF_ERROR(check_rope_type("rope_scaling", *scaling));
  }
  PIO_ASSIGN_OR_RETURN(double top_level, fields.positive("rope_theta", 10000.0));
  const json* parameters = fields.get("rope_parameters");
  if (parameters == nullptr) return top_level;
  if (!parameters->is_object()) return fields.fail("rope_parameters", "must be an object");
  PIO_RETURN_IF_ERROR(check_rope_type("rope_parameters", *parameters));
  auto theta = parameters->find("rope_theta");
  if (theta == parameters->end() || !theta->is_number() || !std::isfinite(theta->get<double>()) ||
      theta->get<double>() <= 0) {
    return invalid_argument_error(
        fmt::format("field \"rope_parameters.rope_theta\" must be a positive number, got {}",
                    theta == parameters->end() ? "nothing" : theta->dump()));
  }
  if (fields.get("rope_theta") != nullptr && top_level != theta->get<double>()) {
    return invalid_argument_error(
        fmt::format("field \"rope_theta\" ({}) disagrees with \"rope_parameters.rope_theta\" ({})",
                    top_level, theta->get<double>()));
  }
  return theta->get<double>();
}

Result<Qwen3Config> parse(const json& object) {
  if (!object.is_object()) return invalid_argument_error("config is not a JSON object");
  const FieldReader fields(object);
  const json* model_type = fields.get("model_type");
  if (model_type == nullptr || !model_type->is_string() ||
      model_type->get_ref<const std::string&>() != "qwen3") {
    return fields.fail("model_type", "must be \"qwen3\" (a Qwen3 dense model)");
  }
  if (const json* act = fields.get("hidden_act");
      act != nullptr && (!act->is_string() || act->get_ref<const std::string&>() != "silu")) {
    return unimplemented_error(
        fmt::format("field \"hidden_act\": {} is not supported (only \"silu\")", act->dump()));
  }
  PIO_ASSIGN_OR_RETURN(bool attention_bias, fields.boolean("attention_bias", false));
  if (attention_bias) {
    return unimplemented_error("field \"attention_bias\": true is not supported (Qwen3 has none)");
  }
  PIO_ASSIGN_OR_RETURN(bool sliding, fields.boolean("use_sliding_window", false));
  if (sliding) {
    return unimplemented_error("field \"use_sliding_window\": true is not supported");
  }
  if (const json* layer_types = fields.get("layer_types")) {
    if (!layer_types->is_array()) return fields.fail("layer_types", "must be a list");
    for (const json& type : *layer_types) {
      if (type != "full_attention") {
        return unimplemented_error(fmt::format(
            "field \"layer_types\": {} is not supported (only \"full_attention\")", type.dump()));
      }
    }
  }

  Qwen3Config c;
  PIO_ASSIGN_OR_RETURN(c.vocab_size, fields.size("vocab_size"));
  PIO_ASSIGN_OR_RETURN(c.hidden_size, fields.size("hidden_size"));
  PIO_ASSIGN_OR_RETURN(c.intermediate_size, fields.size("intermediate_size"));
  PIO_ASSIGN_OR_RETURN(c.num_hidden_layers, fields.size("num_hidden_layers"));
  PIO_ASSIGN_OR_RETURN(c.num_attention_heads, fields.size("num_attention_heads"));
  PIO_ASSIGN_OR_RETURN(c.num_key_value_heads,
                       fields.size("num_key_value_heads", c.num_attention_heads));
  PIO_ASSIGN_OR_RETURN(c.head_dim, fields.size("head_dim"));
  PIO_ASSIGN_OR_RETURN(c.max_position_embeddings,
                       fields.size("max_position_embeddings", c.max_position_embeddings));
  PIO_ASSIGN_OR_RETURN(c.rms_norm_eps, fields.positive("rms_norm_eps", c.rms_norm_eps));
  PIO_ASSIGN_OR_RETURN(c.rope_theta, read_rope_theta(fields));
  PIO_ASSIGN_OR_RETURN(c.tie_word_embeddings, fields.boolean("tie_word_embeddings", false));
  PIO_ASSIGN_OR_RETURN(c.dtype, read_dtype(fields));
  PIO_ASSIGN_OR_RETURN(c.bos_token_ids, fields.token_ids("bos_token_id", c.vocab_size));
  PIO_ASSIGN_OR_RETURN(c.eos_token_ids, fields.token_ids("eos_token_id", c.vocab_size));

  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return invalid_argument_error(
        fmt::format("field \"num_key_value_heads\" ({}) must divide \"num_attention_heads\" ({})",
                    c.num_key_value_heads, c.num_attention_heads));
  }
  if (c.head_dim % 2 != 0) {
    return invalid_argument_error(fmt::format(
        "field \"head_dim\" ({}) must be even: rotary embeddings rotate half of it", c.head_dim));
  }
  if (c.rms_norm_eps >= 1) return fields.fail("rms_norm_eps", "must be below 1");
  return c;
}

}  // namespace

std::optional<DType> parse_config_dtype(std::string_view name) {
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kF16;
  if (name == "float32") return DType::kF32;
  return std::nullopt;
}

std::string_view config_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    case DType::kF32:
      return "float32";
    default:
      break;
  }
  PIO_CHECK(false && "config dtypes are bfloat16, float16 or float32");
  return {};
}

Result<Qwen3Config> parse_qwen3_config(std::string_view json_text, std::string_view label) {
  PIO_ASSIGN_OR_RETURN(json object, parse_checkpoint_json(json_text, label));
  Result<Qwen3Config> config = parse(object);
  if (!config.ok()) return config.status().with_context(fmt::format("config \"{}\"", label));
  return config;
}

Result<Qwen3Config> load_qwen3_config(const std::filesystem::path& directory) {
  const std::filesystem::path path = directory / "config.json";
  PIO_ASSIGN_OR_RETURN(json object, read_checkpoint_json(path));
  Result<Qwen3Config> config = parse(object);
  if (!config.ok()) {
    return config.status().with_context(fmt::format("config \"{}\"", path.string()));
  }
  return config;
}

std::string qwen3_config_to_json(const Qwen3Config& c) {
  auto ids = [](const std::vector<int64_t>& list) -> nlohmann::ordered_json {
    if (list.empty()) return nullptr;
    if (list.size() == 1) return list[0];
    return list;
  };
  nlohmann::ordered_json out = {
      {"architectures", {"Qwen3ForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", ids(c.bos_token_ids)},
      {"eos_token_id", ids(c.eos_token_ids)},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"max_window_layers", c.num_hidden_layers},
      {"model_type", "qwen3"},
      {"num_attention_heads", c.num_attention_heads},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_key_value_heads", c.num_key_value_heads},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_scaling", nullptr},
      {"rope_theta", c.rope_theta},
      {"sliding_window", nullptr},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", c.dtype ? nlohmann::ordered_json(std::string(config_dtype_name(*c.dtype)))
                              : nlohmann::ordered_json(nullptr)},
      {"transformers_version", "4.51.0"},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", c.vocab_size},
  };
  return out.dump(2) + "\n";
}

}  // namespace pio::runtime
