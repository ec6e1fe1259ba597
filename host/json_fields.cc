#include "internal/json_fields.h"

#include "fmt/format.h"

namespace pio::host::internal {

JsonFields::JsonFields(const nlohmann::json& object, std::string source, std::string path)
    : object_(object), source_(std::move(source)), path_(std::move(path)) {}

Result<nlohmann::json> JsonFields::parse(std::string_view text, std::string_view source) {
  nlohmann::json document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return invalid_argument_error(fmt::format("{}: not valid JSON", source));
  }
  return document;
}

Status JsonFields::expect_object(const nlohmann::json& value, std::string_view source,
                                 std::string_view path) {
  if (value.is_object()) return ok_status();
  return invalid_argument_error(fmt::format(
      "{}: {}: expected an object, got {}", source,
      path.empty() ? "document" : fmt::format("field \"{}\"", path), value.type_name()));
}

std::string JsonFields::field_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

Status JsonFields::error(std::string_view key, std::string_view what) const {
  return invalid_argument_error(
      fmt::format("{}: field \"{}\": {}", source_, field_path(key), what));
}

const nlohmann::json* JsonFields::member(std::string_view key) {
  seen_.emplace(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> JsonFields::string(std::string_view key) {
  const nlohmann::json* value = member(key);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string())
    return error(key, fmt::format("expected a string, got {}", value->type_name()));
  return std::optional<std::string>(value->get<std::string>());
}

Result<std::optional<bool>> JsonFields::boolean(std::string_view key) {
  const nlohmann::json* value = member(key);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_boolean())
    return error(key, fmt::format("expected true or false, got {}", value->type_name()));
  return std::optional<bool>(value->get<bool>());
}

Result<std::optional<uint64_t>> JsonFields::unsigned_integer(std::string_view key, uint64_t max) {
  const nlohmann::json* value = member(key);
  if (value == nullptr) return std::optional<uint64_t>();
  if (!value->is_number_unsigned()) {
    return error(key, fmt::format("expected an integer >= 0, got {}", value->dump()));
  }
  const uint64_t v = value->get<uint64_t>();
  if (v > max) return error(key, fmt::format("{} is above the maximum {}", v, max));
  return std::optional<uint64_t>(v);
}

Result<std::optional<std::vector<std::string>>> JsonFields::string_array(std::string_view key) {
  const nlohmann::json* value = member(key);
  if (value == nullptr) return std::optional<std::vector<std::string>>();
  if (!value->is_array())
    return error(key, fmt::format("expected an array of strings, got {}", value->type_name()));
  std::vector<std::string> out;
  for (size_t i = 0; i < value->size(); ++i) {
    const auto& item = (*value)[i];
    if (!item.is_string()) {
      return error(fmt::format("{}[{}]", key, i),
                   fmt::format("expected a string, got {}", item.type_name()));
    }
    out.push_back(item.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<const nlohmann::json*> JsonFields::object(std::string_view key) {
  const nlohmann::json* value = member(key);
  if (value == nullptr) return static_cast<const nlohmann::json*>(nullptr);
  if (!value->is_object())
    return error(key, fmt::format("expected an object, got {}", value->type_name()));
  return value;
}

Status JsonFields::check_no_unknown() const {
  for (const auto& [key, value] : object_.items()) {
    if (!seen_.contains(key)) return error(key, "unknown field");
  }
  return ok_status();
}

}  // namespace pio::host::internal
