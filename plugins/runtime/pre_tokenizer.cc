#include "internal/pre_tokenizer.h"

#include <string>

namespace pio::runtime::internal {
namespace {

// The GPT-2 split that a ByteLevel pre-tokenizer applies when its use_regex is on.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Real files nest one Sequence; the bound keeps a hostile file from exhausting the stack.
constexpr int kMaxNesting = 8;

// Reads an optional boolean field, with the default the reference implementation uses.
Result<bool> bool_field(const nlohmann::json& object, const char* name, bool fallback) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    return invalid_argument_error(std::string("pre_tokenizer field \"") + name +
                                  "\" is not a boolean");
  }
  return it->get<bool>();
}

}  // namespace

Result<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& config) {
  PreTokenizer pre;
  bool byte_level = false;
  PIO_RETURN_IF_ERROR(pre.add(config, byte_level, 0));
  if (!byte_level) {
    return invalid_argument_error(
        "pre_tokenizer has no ByteLevel step: only byte-level BPE tokenizers are supported");
  }
  return pre;
}

Status PreTokenizer::add(const nlohmann::json& config, bool& byte_level, int depth) {
  if (config.is_null()) return ok_status();
  if (depth > kMaxNesting) {
    return invalid_argument_error("pre_tokenizer Sequences are nested more than " +
                                  std::to_string(kMaxNesting) + " deep");
  }
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return invalid_argument_error("pre_tokenizer entry has no \"type\"");
  }
  const std::string type = config["type"].get<std::string>();
  if (type == "Sequence") {
    const auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array()) {
      return invalid_argument_error("pre_tokenizer Sequence has no \"pretokenizers\" array");
    }
    for (const auto& step : *it) PIO_RETURN_IF_ERROR(add(step, byte_level, depth + 1));
    return ok_status();
  }
  if (type == "ByteLevel") {
    PIO_ASSIGN_OR_RETURN(const bool prefix_space, bool_field(config, "add_prefix_space", true));
    PIO_ASSIGN_OR_RETURN(const bool use_regex, bool_field(config, "use_regex", true));
    if (prefix_space) {
      return unimplemented_error("pre_tokenizer ByteLevel with add_prefix_space is not supported");
    }
    if (use_regex) {
      PIO_ASSIGN_OR_RETURN(auto splitter, RegexSplitter::create(kGpt2Pattern));
      splitters_.push_back(std::move(splitter));
    }
    byte_level = true;
    return ok_status();
  }
  if (type == "Split") {
    const auto pattern = config.find("pattern");
    if (pattern == config.end() || !pattern->is_object() || !pattern->contains("Regex") ||
        !(*pattern)["Regex"].is_string()) {
      return unimplemented_error(
          "pre_tokenizer Split without a {\"Regex\": ...} pattern is not supported");
    }
    const auto behavior = config.find("behavior");
    if (behavior == config.end() || *behavior != "Isolated") {
      return unimplemented_error(
          "pre_tokenizer Split behavior other than \"Isolated\" is not supported");
    }
    PIO_ASSIGN_OR_RETURN(const bool invert, bool_field(config, "invert", false));
    if (invert) return unimplemented_error("pre_tokenizer Split with invert is not supported");
    PIO_ASSIGN_OR_RETURN(auto splitter,
                         RegexSplitter::create((*pattern)["Regex"].get<std::string>()));
    splitters_.push_back(std::move(splitter));
    return ok_status();
  }
  return unimplemented_error("pre_tokenizer type \"" + type + "\" is not supported");
}

Status PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (splitters_.empty()) {
    if (!text.empty()) pieces.push_back(text);
    return ok_status();
  }
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (size_t i = 0; i < splitters_.size(); ++i) {
    std::vector<std::string_view>& out = i + 1 == splitters_.size() ? pieces : next;
    for (const std::string_view piece : current)
      PIO_RETURN_IF_ERROR(splitters_[i].split(piece, out));
    if (i + 1 < splitters_.size()) {
      current.swap(next);
      next.clear();
    }
  }
  return ok_status();
}

}  // namespace pio::runtime::internal
