#include "pio/runtime/tokenizer.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "qwen3_test_data.h"

namespace pio::runtime {
namespace {

using testing::qwen3_tokenizer;
using testing::read_jsonl;
using testing::reference_cases;

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

std::string nfc(const std::string& text) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string result(reinterpret_cast<const char*>(out), n < 0 ? 0 : static_cast<size_t>(n));
  std::free(out);
  return result;
}

TEST(Qwen3Tokenizer, EncodesEveryReferenceCaseExactly) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto cases = read_jsonl(reference_cases("qwen3_cases.jsonl"));
  ASSERT_EQ(cases.size(), 420u);
  int passed = 0;
  int reported = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i]["text"].get<std::string>();
    const auto expected = cases[i]["ids"].get<std::vector<int32_t>>();
    const auto ids = tokenizer->encode(text);
    ASSERT_TRUE(ids.ok()) << "case " << i << ": " << ids.status().to_string();
    if (*ids == expected) {
      ++passed;
    } else if (reported++ < 5) {
      ADD_FAILURE() << "case " << i << " " << nlohmann::json(text).dump() << "\n  expected "
                    << ids_text(expected) << "\n  got      " << ids_text(*ids);
    }
  }
  EXPECT_EQ(passed, static_cast<int>(cases.size())) << passed << " of " << cases.size() << " match";
}

TEST(Qwen3Tokenizer, DecodingTheReferenceIdsGivesBackTheNormalizedText) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto cases = read_jsonl(reference_cases("qwen3_cases.jsonl"));
  ASSERT_EQ(cases.size(), 420u);
  int changed_by_nfc = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i]["text"].get<std::string>();
    const auto ids = cases[i]["ids"].get<std::vector<int32_t>>();
    const std::string expected = nfc(text);
    if (expected != text) ++changed_by_nfc;
    EXPECT_EQ(tokenizer->decode(ids), expected) << "case " << i;
  }
  // The cases include text that is not in NFC (decomposed accents, singletons such as U+2001).
  EXPECT_GT(changed_by_nfc, 0);
}

TEST(Qwen3Tokenizer, MatchesSpecialTokensBeforeSplittingAndSkipsThemOnRequest) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto ids = tokenizer->encode("<|im_start|>user\nhi<think>x</think><|im_end|>");
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 4u);
  EXPECT_EQ(ids->front(), 151644);
  EXPECT_EQ(ids->back(), 151645);
  EXPECT_EQ(tokenizer->decode(*ids), "<|im_start|>user\nhi<think>x</think><|im_end|>");
  // <think> is an added token but not a special one: it survives skip_special_tokens.
  EXPECT_EQ(tokenizer->decode(*ids, /*skip_special_tokens=*/true), "user\nhi<think>x</think>");
  EXPECT_TRUE(tokenizer->is_special(151645));
  EXPECT_FALSE(tokenizer->is_special(151667));
  EXPECT_EQ(tokenizer->token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tokenizer->token_to_id("<think>"), 151667);
}

TEST(Qwen3Tokenizer, DecodeSkipsIdsThatNameNoToken) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto hi = tokenizer->encode("hi");
  ASSERT_TRUE(hi.ok());
  std::vector<int32_t> ids = {-1, tokenizer->id_limit(), 151935};
  ids.insert(ids.end(), hi->begin(), hi->end());
  EXPECT_EQ(tokenizer->decode(ids), "hi");
  EXPECT_TRUE(tokenizer->token_bytes(-7).empty());
}

TEST(Qwen3Tokenizer, RefusesTextThatIsNotUtf8) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto ids = tokenizer->encode("ok \xC3( bad");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("byte 3"), std::string::npos) << ids.status().message();
}

TEST(Qwen3Tokenizer, EncodesEmptyTextAsNoIds) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto ids = tokenizer->encode("");
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
}

// A tiny tokenizer.json over printable ASCII ("Ġ" is the byte-level form of a space).
nlohmann::json tiny_tokenizer() {
  return nlohmann::json::parse(R"({
    "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "<": 5, "m": 6, ">": 7},
              "merges": [["a", "b"], ["Ġ", "ab"]]}
  })");
}

Result<Tokenizer> load(const nlohmann::json& doc) { return Tokenizer::from_json(doc.dump()); }

std::vector<int32_t> encode(const Tokenizer& tokenizer, std::string_view text) {
  auto ids = tokenizer.encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status().to_string();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(Tokenizer, AppliesMergesByRank) {
  const auto tokenizer = load(tiny_tokenizer());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  EXPECT_EQ(encode(*tokenizer, "ab ab ba"), (std::vector<int32_t>{2, 4, 3, 1, 0}));
}

TEST(Tokenizer, SplitRegexCutsTheTextAtEmptyMatchesToo) {
  auto doc = tiny_tokenizer();
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "(?=b)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const auto tokenizer = load(doc);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  // "a" and "b" end up in different pieces, so the a+b merge cannot apply.
  EXPECT_EQ(encode(*tokenizer, "abab"), (std::vector<int32_t>{0, 1, 0, 1}));
}

// Patterns run on Oniguruma in the reference implementation, whose \s takes U+0085 but not
// U+180E (PCRE2's does both).
TEST(Tokenizer, SplitRegexUsesOnigurumasWhitespace) {
  auto doc = tiny_tokenizer();
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\S+|[\\s]+"}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const auto tokenizer = load(doc);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  // The bytes of these characters have no token and vanish; whether "a" and "b" merge tells
  // whether the character was a space (two pieces) or not (one piece).
  EXPECT_EQ(encode(*tokenizer, "a\u180Eb"), (std::vector<int32_t>{2}));
  EXPECT_EQ(encode(*tokenizer, "a\u0085b"), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(encode(*tokenizer, "a\u3000b"), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(encode(*tokenizer, "a\u200Bb"), (std::vector<int32_t>{2}));
}

TEST(Tokenizer, AcceptsMergesWrittenAsSpaceSeparatedStrings) {
  auto doc = tiny_tokenizer();
  doc["model"]["merges"] = {"a b", "Ġ ab"};
  const auto tokenizer = load(doc);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  EXPECT_EQ(encode(*tokenizer, "ab ab"), (std::vector<int32_t>{2, 4}));
}

TEST(Tokenizer, AddedTokenWithLstripTakesTheSpacesBeforeIt) {
  auto doc = tiny_tokenizer();
  doc["added_tokens"] = {{{"id", 8},
                          {"content", "<m>"},
                          {"special", true},
                          {"normalized", false},
                          {"lstrip", false},
                          {"rstrip", false},
                          {"single_word", false}}};
  auto plain = load(doc);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(encode(*plain, "a <m>b"), (std::vector<int32_t>{0, 3, 8, 1}));
  doc["added_tokens"][0]["lstrip"] = true;
  doc["added_tokens"][0]["rstrip"] = true;
  auto stripped = load(doc);
  ASSERT_TRUE(stripped.ok()) << stripped.status().to_string();
  EXPECT_EQ(encode(*stripped, "a <m> b"), (std::vector<int32_t>{0, 8, 1}));
}

TEST(Tokenizer, SingleWordAddedTokenDoesNotMatchInsideAWord) {
  auto doc = tiny_tokenizer();
  doc["added_tokens"] = {{{"id", 8},
                          {"content", "ab"},
                          {"special", false},
                          {"normalized", false},
                          {"single_word", true}}};
  auto tokenizer = load(doc);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  EXPECT_EQ(encode(*tokenizer, "ab"), (std::vector<int32_t>{8}));
  EXPECT_EQ(encode(*tokenizer, "bab"), (std::vector<int32_t>{1, 2}));
}

TEST(Tokenizer, RefusesMalformedFilesWithAClearError) {
  struct BadCase {
    std::string name;
    std::string json;
    ErrorCode code;
    std::string message_part;
  };
  const auto with = [](const char* pointer, nlohmann::json value) {
    auto doc = tiny_tokenizer();
    doc[nlohmann::json::json_pointer(pointer)] = std::move(value);
    return doc.dump();
  };
  const std::vector<BadCase> cases = {
      {"not json", "{\"model\": ", ErrorCode::kInvalidArgument, "not valid JSON"},
      {"not an object", "[1, 2]", ErrorCode::kInvalidArgument, "not a JSON object"},
      {"wordpiece", with("/model/type", "WordPiece"), ErrorCode::kUnimplemented, "BPE only"},
      {"no vocab", with("/model/vocab", nullptr), ErrorCode::kInvalidArgument, "vocab"},
      {"merge of unknown tokens",
       with("/model/merges", nlohmann::json::array({nlohmann::json::array({"a", "z"})})),
       ErrorCode::kInvalidArgument, "merge 0"},
      {"merge of odd shape",
       with("/model/merges", nlohmann::json::array({nlohmann::json::array({"a"})})),
       ErrorCode::kInvalidArgument, "merge 0"},
      {"negative id", with("/model/vocab/a", -4), ErrorCode::kInvalidArgument, "\"a\""},
      {"huge id", with("/model/vocab/a", 1LL << 40), ErrorCode::kInvalidArgument, "\"a\""},
      {"string id", with("/model/vocab/a", "0"), ErrorCode::kInvalidArgument, "\"a\""},
      {"ids mostly gaps", with("/model/vocab/a", 4'000'000), ErrorCode::kInvalidArgument,
       "token ids go up to 4000000"},
      {"bad regex",
       with("/pre_tokenizer",
            {{"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}"}}}, {"behavior", "Isolated"}},
               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}),
       ErrorCode::kInvalidArgument, "regex"},
      {"not byte-level", with("/pre_tokenizer", {{"type", "Whitespace"}}),
       ErrorCode::kUnimplemented, "Whitespace"},
      {"no ByteLevel step", with("/pre_tokenizer", nullptr), ErrorCode::kInvalidArgument,
       "ByteLevel"},
      {"other decoder", with("/decoder", {{"type", "WordPiece"}}), ErrorCode::kUnimplemented,
       "decoder"},
      {"dropout", with("/model/dropout", 0.1), ErrorCode::kUnimplemented, "dropout"},
      {"added token without content", with("/added_tokens", {{{"id", 9}}}),
       ErrorCode::kInvalidArgument, "content"},
      {"unknown normalizer", with("/normalizer", {{"type", "Lowercase"}}),
       ErrorCode::kUnimplemented, "Lowercase"},
  };
  for (const auto& c : cases) {
    const auto tokenizer = Tokenizer::from_json(c.json);
    ASSERT_FALSE(tokenizer.ok()) << c.name;
    EXPECT_EQ(tokenizer.status().code(), c.code)
        << c.name << ": " << tokenizer.status().to_string();
    EXPECT_NE(tokenizer.status().message().find(c.message_part), std::string::npos)
        << c.name << ": " << tokenizer.status().to_string();
  }
}

TEST(Tokenizer, RefusesPreTokenizersNestedTooDeep) {
  nlohmann::json step = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  for (int i = 0; i < 10000; ++i) {
    step = {{"type", "Sequence"}, {"pretokenizers", nlohmann::json::array({std::move(step)})}};
  }
  auto doc = tiny_tokenizer();
  doc["pre_tokenizer"] = std::move(step);
  const auto tokenizer = load(doc);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_NE(tokenizer.status().message().find("nested"), std::string::npos)
      << tokenizer.status().to_string();
}

TEST(Tokenizer, FromFileNamesTheMissingFile) {
  const auto tokenizer = Tokenizer::from_file("/nonexistent/dir/tokenizer.json");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(tokenizer.status().message().find("/nonexistent/dir/tokenizer.json"),
            std::string::npos);
}

}  // namespace
}  // namespace pio::runtime
