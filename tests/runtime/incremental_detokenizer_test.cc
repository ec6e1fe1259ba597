#include "pio/runtime/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "qwen3_test_data.h"

namespace pio::runtime {
namespace {

using testing::is_valid_utf8;
using testing::qwen3_tokenizer;
using testing::read_jsonl;
using testing::reference_cases;

// The id of the token that stands for exactly one raw byte.
int32_t byte_token(const Tokenizer& tokenizer, unsigned char byte) {
  for (int32_t id = 0; id < tokenizer.id_limit(); ++id) {
    const std::string_view bytes = tokenizer.token_bytes(id);
    if (bytes.size() == 1 && static_cast<unsigned char>(bytes[0]) == byte) return id;
  }
  ADD_FAILURE() << "no token for byte " << static_cast<int>(byte);
  return -1;
}

TEST(IncrementalDetokenizer, StreamsEveryReferenceCaseAsWholeCharactersThatJoinToDecode) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto cases = read_jsonl(reference_cases("qwen3_cases.jsonl"));
  ASSERT_EQ(cases.size(), 420u);
  int held_back = 0;  // times a token ended inside a character
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = cases[i]["ids"].get<std::vector<int32_t>>();
    IncrementalDetokenizer detokenizer(*tokenizer);
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = detokenizer.push(id);
      ASSERT_TRUE(is_valid_utf8(piece)) << "case " << i << " token " << id;
      if (detokenizer.pending_bytes() > 0) ++held_back;
      streamed += piece;
    }
    EXPECT_EQ(detokenizer.pending_bytes(), 0u) << "case " << i;
    streamed += detokenizer.finish();
    EXPECT_EQ(streamed, tokenizer->decode(ids)) << "case " << i;
  }
  // The cases have characters split across tokens (CJK, emoji), so holding back was exercised.
  EXPECT_GT(held_back, 0);
}

TEST(IncrementalDetokenizer, HoldsACharacterBackUntilItsLastByteArrives) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  IncrementalDetokenizer detokenizer(*tokenizer);
  // U+20AC EURO SIGN is E2 82 AC.
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0xE2)), "");
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0x82)), "");
  EXPECT_EQ(detokenizer.pending_bytes(), 2u);
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0xAC)), "\xE2\x82\xAC");
  EXPECT_EQ(detokenizer.pending_bytes(), 0u);
}

TEST(IncrementalDetokenizer, ReplacesABrokenCharacterOnceItCannotComplete) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  IncrementalDetokenizer detokenizer(*tokenizer);
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0xE2)), "");
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 'a')),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0xF0)), "");
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 0x9F)), "");
  // The sequence ended early: the tail becomes one U+FFFD, as decode() would give.
  EXPECT_EQ(detokenizer.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(detokenizer.pending_bytes(), 0u);
  EXPECT_EQ(detokenizer.push(byte_token(*tokenizer, 'b')), "b");
}

TEST(IncrementalDetokenizer, SkipsSpecialTokensWhenAsked) {
  const Tokenizer* tokenizer = qwen3_tokenizer();
  ASSERT_NE(tokenizer, nullptr);
  const auto ids = tokenizer->encode("<|im_start|>assistant\n<think>\n\n</think>\n\nhi<|im_end|>");
  ASSERT_TRUE(ids.ok());
  IncrementalDetokenizer skipping(*tokenizer, /*skip_special_tokens=*/true);
  IncrementalDetokenizer keeping(*tokenizer);
  std::string skipped;
  std::string kept;
  for (const int32_t id : *ids) {
    skipped += skipping.push(id);
    kept += keeping.push(id);
  }
  EXPECT_EQ(skipped + skipping.finish(), "assistant\n<think>\n\n</think>\n\nhi");
  EXPECT_EQ(kept + keeping.finish(), "<|im_start|>assistant\n<think>\n\n</think>\n\nhi<|im_end|>");
}

}  // namespace
}  // namespace pio::runtime
