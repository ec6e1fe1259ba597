#include "pio/runtime/generation_config.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <system_error>

#include "internal/checkpoint_json.h"

namespace pio::runtime {
namespace {

using nlohmann::json;

Status field_error(std::string_view field, std::string_view what, const json& value) {
  return invalid_argument_error(fmt::format("field \"{}\" {}, got {}", field, what, value.dump()));
}

// `field` as a number in [low, high] (an exclusive low when `low_open`); absent/null: unchanged.
Status read_number(const json& object, std::string_view field, double low, bool low_open,
                   double high, double* out) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return ok_status();
  const bool in_range = it->is_number() && std::isfinite(it->get<double>()) &&
                        (low_open ? it->get<double>() > low : it->get<double>() >= low) &&
                        it->get<double>() <= high;
  if (!in_range) {
    return field_error(field,
                       fmt::format("must be a number in {}{}, {}]", low_open ? "(" : "[", low,
                                   std::isinf(high) ? std::string("inf") : fmt::format("{}", high)),
                       *it);
  }
  *out = it->get<double>();
  return ok_status();
}

Result<std::optional<int64_t>> read_count(const json& object, std::string_view field) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return field_error(field, "must be a non-negative integer", *it);
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<GenerationConfig> parse(const json& object) {
  if (!object.is_object()) return invalid_argument_error("not a JSON object");
  GenerationConfig c;
  if (auto it = object.find("do_sample"); it != object.end() && !it->is_null()) {
    if (!it->is_boolean()) return field_error("do_sample", "must be true or false", *it);
    c.do_sample = it->get<bool>();
  }
  const double inf = HUGE_VAL;
  PIO_RETURN_IF_ERROR(read_number(object, "temperature", 0, false, inf, &c.temperature));
  PIO_RETURN_IF_ERROR(read_number(object, "top_p", 0, true, 1, &c.top_p));
  PIO_RETURN_IF_ERROR(read_number(object, "min_p", 0, false, 1, &c.min_p));
  PIO_RETURN_IF_ERROR(
      read_number(object, "repetition_penalty", 0, true, inf, &c.repetition_penalty));
  PIO_ASSIGN_OR_RETURN(std::optional<int64_t> top_k, read_count(object, "top_k"));
  if (top_k) c.top_k = *top_k;
  PIO_ASSIGN_OR_RETURN(c.max_new_tokens, read_count(object, "max_new_tokens"));
  PIO_ASSIGN_OR_RETURN(c.bos_token_id, read_count(object, "bos_token_id"));
  PIO_ASSIGN_OR_RETURN(c.pad_token_id, read_count(object, "pad_token_id"));
  if (auto it = object.find("eos_token_id"); it != object.end() && !it->is_null()) {
    const json list = it->is_array() ? *it : json::array({*it});
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        return field_error("eos_token_id", "must be a token id or a list of them", *it);
      }
      c.eos_token_ids.push_back(id.get<int64_t>());
    }
  }
  return c;
}

}  // namespace

Result<GenerationConfig> parse_generation_config(std::string_view json_text,
                                                 std::string_view label) {
  PIO_ASSIGN_OR_RETURN(json object, parse_checkpoint_json(json_text, label));
  Result<GenerationConfig> config = parse(object);
  if (!config.ok()) {
    return config.status().with_context(fmt::format("generation config \"{}\"", label));
  }
  return config;
}

Result<GenerationConfig> load_generation_config(const std::filesystem::path& directory) {
  const std::filesystem::path path = directory / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GenerationConfig{};
  PIO_ASSIGN_OR_RETURN(json object, read_checkpoint_json(path));
  Result<GenerationConfig> config = parse(object);
  if (!config.ok()) {
    return config.status().with_context(fmt::format("generation config \"{}\"", path.string()));
  }
  return config;
}

std::string generation_config_to_json(const GenerationConfig& c) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (c.bos_token_id) out["bos_token_id"] = *c.bos_token_id;
  out["do_sample"] = c.do_sample;
  if (c.eos_token_ids.size() == 1) {
    out["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    out["eos_token_id"] = c.eos_token_ids;
  }
  if (c.max_new_tokens) out["max_new_tokens"] = *c.max_new_tokens;
  if (c.min_p != 0.0) out["min_p"] = c.min_p;
  if (c.pad_token_id) out["pad_token_id"] = *c.pad_token_id;
  if (c.repetition_penalty != 1.0) out["repetition_penalty"] = c.repetition_penalty;
  out["temperature"] = c.temperature;
  out["top_k"] = c.top_k;
  out["top_p"] = c.top_p;
  out["transformers_version"] = "4.51.0";
  return out.dump(2) + "\n";
}

}  // namespace pio::runtime
