#include "pio/runtime/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "internal/added_tokens.h"
#include "internal/bpe_model.h"
#include "internal/pre_tokenizer.h"
#include "internal/unicode_normalizer.h"
#include "internal/utf8.h"

namespace pio::runtime {

using internal::AddedToken;
using internal::AddedTokenMatcher;
using internal::BpeModel;
using internal::NormalForm;
using internal::PreTokenizer;
using internal::TextSegment;
using internal::UnicodeNormalizer;

namespace {

// Ids index dense tables; a file claiming larger ones is refused rather than allocated for. The
// largest real vocabularies have about 260k entries.
constexpr int64_t kMaxTokenId = (1 << 22) - 1;
// Real files number their tokens 0..n-1; a few gaps are fine, a table mostly made of gaps is not.
constexpr size_t kMaxUnusedIds = 1 << 16;
// Real files nest one Sequence; the bound keeps a hostile file from exhausting the stack.
constexpr int kMaxNesting = 8;

Result<int32_t> token_id(const nlohmann::json& value, std::string_view what) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
      value.get<int64_t>() > kMaxTokenId) {
    return invalid_argument_error(std::string(what) + " has an id that is not an integer in [0, " +
                                  std::to_string(kMaxTokenId) + "]");
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

Result<NormalForm> parse_normalizer(const nlohmann::json& config, int depth = 0) {
  if (config.is_null()) return NormalForm::kNone;
  if (depth > kMaxNesting)
    return invalid_argument_error("normalizer Sequences are nested too deep");
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return invalid_argument_error("normalizer has no \"type\"");
  }
  const std::string type = config["type"].get<std::string>();
  if (type == "NFC") return NormalForm::kNfc;
  if (type == "NFD") return NormalForm::kNfd;
  if (type == "NFKC") return NormalForm::kNfkc;
  if (type == "NFKD") return NormalForm::kNfkd;
  if (type == "Sequence") {
    const auto it = config.find("normalizers");
    if (it == config.end() || !it->is_array()) {
      return invalid_argument_error("normalizer Sequence has no \"normalizers\" array");
    }
    if (it->empty()) return NormalForm::kNone;
    if (it->size() == 1) return parse_normalizer((*it)[0], depth + 1);
    return unimplemented_error("normalizer Sequence of several steps is not supported");
  }
  return unimplemented_error("normalizer type \"" + type + "\" is not supported");
}

Status check_model(const nlohmann::json& model) {
  if (!model.is_object()) return invalid_argument_error("\"model\" is not an object");
  if (model.contains("type") && model["type"] != "BPE") {
    return unimplemented_error("model type " + model["type"].dump() +
                               " is not supported (BPE only)");
  }
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    return unimplemented_error("BPE dropout is not supported (it makes encoding random)");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(affix) && !model[affix].is_null() && model[affix] != "") {
      return unimplemented_error(std::string("BPE ") + affix + " is not supported");
    }
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return invalid_argument_error("model has no \"vocab\" object");
  }
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return invalid_argument_error("model has no \"merges\" array");
  }
  return ok_status();
}

Result<std::vector<std::pair<std::string, std::string>>> parse_merges(
    const nlohmann::json& merges) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    if (m.is_string()) {  // the older "left right" form
      const auto& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space != std::string::npos && s.find(' ', space + 1) == std::string::npos) {
        out.emplace_back(s.substr(0, space), s.substr(space + 1));
        continue;
      }
    }
    return invalid_argument_error("merge " + std::to_string(i) +
                                  " is neither [\"left\", \"right\"] nor \"left right\"");
  }
  return out;
}

Result<AddedToken> parse_added_token(const nlohmann::json& entry) {
  if (!entry.is_object() || !entry.contains("content") || !entry["content"].is_string() ||
      !entry.contains("id")) {
    return invalid_argument_error("added token needs \"id\" and \"content\"");
  }
  AddedToken token;
  token.content = entry["content"].get<std::string>();
  PIO_ASSIGN_OR_RETURN(token.id, token_id(entry["id"], "added token \"" + token.content + "\""));
  const auto flag = [&](const char* name, bool fallback) {
    const auto it = entry.find(name);
    return it != entry.end() && it->is_boolean() ? it->get<bool>() : fallback;
  };
  token.special = flag("special", false);
  token.normalized = flag("normalized", !token.special);
  token.single_word = flag("single_word", false);
  token.lstrip = flag("lstrip", false);
  token.rstrip = flag("rstrip", false);
  return token;
}

}  // namespace

struct Tokenizer::State {
  explicit State(BpeModel bpe_model) : bpe(std::move(bpe_model)) {}

  BpeModel bpe;
  UnicodeNormalizer normalizer;
  PreTokenizer pre_tokenizer;
  AddedTokenMatcher raw_added;         // added tokens matched before normalization
  AddedTokenMatcher normalized_added;  // added tokens matched after it
  std::unordered_map<std::string, int32_t> added_by_content;
  std::vector<std::string> bytes_by_id;  // what each id decodes to
  std::vector<bool> special_by_id;
};

Result<Tokenizer> Tokenizer::from_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found_error("cannot open tokenizer file " + path.string());
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return invalid_argument_error("cannot read tokenizer file " + path.string());
  if (static_cast<uint64_t>(size) > kMaxFileBytes) {
    return invalid_argument_error(path.string() + " is " + std::to_string(size) +
                                  " bytes, more than the " + std::to_string(kMaxFileBytes) +
                                  " a tokenizer file may have");
  }
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size))
    return invalid_argument_error("cannot read tokenizer file " + path.string());
  auto tokenizer = from_json(text);
  if (!tokenizer.ok()) return tokenizer.status().with_context(path.string());
  return tokenizer;
}

Result<Tokenizer> Tokenizer::from_json(std::string_view json_text) {
  const nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument_error("tokenizer.json is not valid JSON");
  if (!doc.is_object()) return invalid_argument_error("tokenizer.json is not a JSON object");
  try {
    const auto field = [&](const char* name) -> const nlohmann::json& {
      static const nlohmann::json kNull;
      const auto it = doc.find(name);
      return it == doc.end() ? kNull : *it;
    };

    const nlohmann::json& model = field("model");
    PIO_RETURN_IF_ERROR(check_model(model));
    std::unordered_map<std::string, int32_t> vocab;
    vocab.reserve(model["vocab"].size());
    for (const auto& [text, id_value] : model["vocab"].items()) {
      PIO_ASSIGN_OR_RETURN(const int32_t id, token_id(id_value, "vocab entry \"" + text + "\""));
      vocab.emplace(text, id);
    }
    PIO_ASSIGN_OR_RETURN(const auto merges, parse_merges(model["merges"]));
    const bool ignore_merges = model.contains("ignore_merges") &&
                               model["ignore_merges"].is_boolean() &&
                               model["ignore_merges"].get<bool>();
    PIO_ASSIGN_OR_RETURN(auto bpe, BpeModel::create(std::move(vocab), merges, ignore_merges));
    auto state = std::make_shared<State>(std::move(bpe));

    PIO_ASSIGN_OR_RETURN(const NormalForm form, parse_normalizer(field("normalizer")));
    state->normalizer = UnicodeNormalizer(form);
    PIO_ASSIGN_OR_RETURN(state->pre_tokenizer, PreTokenizer::from_json(field("pre_tokenizer")));

    const nlohmann::json& decoder = field("decoder");
    if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel") {
      return unimplemented_error("decoder must be ByteLevel (the only kind supported)");
    }

    std::vector<AddedToken> raw;
    std::vector<AddedToken> normalized;
    const nlohmann::json& added = field("added_tokens");
    if (!added.is_null() && !added.is_array())
      return invalid_argument_error("\"added_tokens\" is not an array");
    for (const auto& entry : added) {
      PIO_ASSIGN_OR_RETURN(AddedToken token, parse_added_token(entry));
      state->added_by_content[token.content] = token.id;
      (token.normalized ? normalized : raw).push_back(std::move(token));
    }

    // Dense per-id tables for decoding: the vocab first, added tokens override their ids.
    int32_t limit = 0;
    for (const auto& [text, id] : state->bpe.vocab()) limit = std::max(limit, id + 1);
    for (const auto* list : {&raw, &normalized}) {
      for (const auto& token : *list) limit = std::max(limit, token.id + 1);
    }
    const size_t entries = state->bpe.vocab().size() + raw.size() + normalized.size();
    if (static_cast<size_t>(limit) > entries + kMaxUnusedIds) {
      return invalid_argument_error("token ids go up to " + std::to_string(limit - 1) +
                                    " for only " + std::to_string(entries) + " tokens");
    }
    state->bytes_by_id.assign(static_cast<size_t>(limit), std::string());
    state->special_by_id.assign(static_cast<size_t>(limit), false);
    const auto& alphabet = state->bpe.alphabet();
    const auto token_bytes_of = [&](const std::string& text) {
      // A token outside the byte-level alphabet decodes to its own UTF-8 text.
      auto bytes = alphabet.decode(text);
      return bytes.has_value() ? *std::move(bytes) : text;
    };
    for (const auto& [text, id] : state->bpe.vocab()) {
      state->bytes_by_id[static_cast<size_t>(id)] = token_bytes_of(text);
    }
    for (const auto* list : {&raw, &normalized}) {
      for (const auto& token : *list) {
        state->bytes_by_id[static_cast<size_t>(token.id)] = token_bytes_of(token.content);
        state->special_by_id[static_cast<size_t>(token.id)] = token.special;
      }
    }
    state->raw_added = AddedTokenMatcher(std::move(raw));
    state->normalized_added = AddedTokenMatcher(std::move(normalized));
    return Tokenizer(std::move(state));
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument_error(std::string("tokenizer.json has an unexpected shape: ") +
                                  e.what());
  }
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text) const {
  const size_t bad = internal::first_invalid_utf8(text);
  if (bad != text.size()) {
    return invalid_argument_error("text to encode is not valid UTF-8 (at byte " +
                                  std::to_string(bad) + ")");
  }
  const State& s = *state_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  std::vector<TextSegment> segments;
  s.raw_added.split(text, segments);
  std::vector<TextSegment> normalized_segments;
  std::vector<std::string_view> pieces;
  for (const TextSegment& segment : segments) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    PIO_ASSIGN_OR_RETURN(const std::string normalized, s.normalizer.normalize(segment.text));
    normalized_segments.clear();
    if (s.normalized_added.empty()) {
      normalized_segments.push_back({normalized, -1});
    } else {
      s.normalized_added.split(normalized, normalized_segments);
    }
    for (const TextSegment& part : normalized_segments) {
      if (part.token_id >= 0) {
        ids.push_back(part.token_id);
        continue;
      }
      pieces.clear();
      PIO_RETURN_IF_ERROR(s.pre_tokenizer.split(part.text, pieces));
      for (const std::string_view piece : pieces) s.bpe.encode_word(piece, ids);
    }
  }
  return ids;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= id_limit()) return {};
  return state_->bytes_by_id[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    bytes.append(token_bytes(id));
  }
  std::string text;
  text.reserve(bytes.size());
  internal::append_utf8_lossy(bytes, /*final=*/true, text);
  return text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (const auto it = state_->added_by_content.find(key); it != state_->added_by_content.end()) {
    return it->second;
  }
  if (const auto it = state_->bpe.vocab().find(key); it != state_->bpe.vocab().end())
    return it->second;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < id_limit() && state_->special_by_id[static_cast<size_t>(id)];
}

int32_t Tokenizer::id_limit() const { return static_cast<int32_t>(state_->bytes_by_id.size()); }

}  // namespace pio::runtime
