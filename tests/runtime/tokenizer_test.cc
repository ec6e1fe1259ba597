#include "pio/runtime/tokenizer.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pio::runtime
