#include "pio/runtime/chat_template_qwen3.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "qwen3_test_data.h"

namespace pio::runtime {
namespace {

using Json = nlohmann::ordered_json;
using testing::read_jsonl;
using testing::reference_cases;

// Where two renderings first differ, with some context, for a readable failure.
std::string first_difference(const std::string& expected, const std::string& got) {
  size_t at = 0;
  while (at < expected.size() && at < got.size() && expected[at] == got[at]) ++at;
  const size_t from = at < 40 ? 0 : at - 40;
  return "first difference at byte " + std::to_string(at) + "\n  expected ..." +
         Json(expected.substr(from, 100)).dump() + "\n  got      ..." +
         Json(got.substr(from, 100)).dump();
}

TEST(Qwen3ChatTemplate, RendersEveryReferenceConversationByteForByte) {
  const auto cases = read_jsonl(reference_cases("qwen3_chat_cases.jsonl"));
  ASSERT_EQ(cases.size(), 150u);
  int passed = 0;
  int reported = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    Qwen3ChatOptions options;
    options.add_generation_prompt = c.value("add_generation_prompt", false);
    options.enable_thinking = c.value("enable_thinking", true);
    const auto rendered = render_qwen3_chat(c["messages"], c.value("tools", Json()), options);
    ASSERT_TRUE(rendered.ok()) << "case " << i << ": " << rendered.status().to_string();
    const std::string expected = c["rendered"].get<std::string>();
    if (*rendered == expected) {
      ++passed;
    } else if (reported++ < 5) {
      ADD_FAILURE() << "case " << i << ": " << first_difference(expected, *rendered);
    }
  }
  EXPECT_EQ(passed, static_cast<int>(cases.size())) << passed << " of " << cases.size() << " match";
}

Result<std::string> render(const char* messages, const char* tools = "null",
                           Qwen3ChatOptions options = {}) {
  return render_qwen3_chat(Json::parse(messages), Json::parse(tools), options);
}

TEST(Qwen3ChatTemplate, WritesToolJsonAsPythonJsonDumpsDoes) {
  // Expected text from Python: json.dumps(tool, ensure_ascii=False), keys in the given order.
  const auto rendered = render(
      R"([{"role": "user", "content": "q"}])",
      R"([{"z": [1.0, 0.5, 1e16, 1e15, 1.5e-7, 0.0001, 0.00001, -0.0, 123456789.125, 1e100, 3],
           "a": "x\u0001\"\\\n\t\u007f\u00e9\u2028/<>&'", "e": {}, "l": [], "n": null,
           "b": [true, false], "big": 18446744073709551615, "neg": -9223372036854775808}])");
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  const std::string expected_tool =
      "\n{\"z\": [1.0, 0.5, 1e+16, 1000000000000000.0, 1.5e-07, 0.0001, 1e-05, -0.0, "
      "123456789.125, "
      "1e+100, 3], \"a\": \"x\\u0001\\\"\\\\\\n\\t\x7f\xC3\xA9\xE2\x80\xA8/<>&'\", \"e\": {}, "
      "\"l\": [], "
      "\"n\": null, \"b\": [true, false], \"big\": 18446744073709551615, \"neg\": "
      "-9223372036854775808}\n"
      "</tools>";
  EXPECT_NE(rendered->find(expected_tool), std::string::npos) << *rendered;
}

TEST(Qwen3ChatTemplate, KeepsToolCallArgumentsGivenAsTextVerbatim) {
  const auto rendered = render(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{\"b\":2,\"a\":1}"}},
        {"name": "g", "arguments": {"b": 2, "a": 1}}]}])");
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  EXPECT_EQ(*rendered,
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"b\":2,\"a\":1}}\n</tool_call>\n"
            "<tool_call>\n{\"name\": \"g\", \"arguments\": {\"b\": 2, \"a\": "
            "1}}\n</tool_call><|im_end|>\n");
}

TEST(Qwen3ChatTemplate, DropsReasoningOfTurnsBeforeTheLastQuery) {
  const auto rendered = render(R"([
      {"role": "user", "content": "a"},
      {"role": "assistant", "content": "<think>\nold\n</think>\n\nA"},
      {"role": "user", "content": "b"},
      {"role": "assistant", "content": "B", "reasoning_content": "new"}])");
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  EXPECT_EQ(*rendered,
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
            "<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n<think>\nnew\n</"
            "think>\n\nB<|im_end|>\n");
}

TEST(Qwen3ChatTemplate, GroupsConsecutiveToolResultsInOneUserTurn) {
  const auto rendered = render(R"([
      {"role": "user", "content": "q"},
      {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]},
      {"role": "tool", "content": "r1"},
      {"role": "tool", "content": "r2"}])",
                               "null", {.add_generation_prompt = true, .enable_thinking = false});
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  EXPECT_TRUE(
      rendered->ends_with("<|im_start|>user\n<tool_response>\nr1\n</"
                          "tool_response>\n<tool_response>\nr2\n</tool_response>"
                          "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"))
      << *rendered;
}

TEST(Qwen3ChatTemplate, RefusesMessagesItCannotRender) {
  const char* bad[] = {
      R"([])",
      R"({"role": "user"})",
      R"([{"content": "no role"}])",
      R"([{"role": "user", "content": [{"type": "text", "text": "parts"}]}])",
      R"([{"role": "assistant", "content": "x", "reasoning_content": 5}])",
      R"([{"role": "assistant", "content": "x", "tool_calls": [{"function": {"arguments": {}}}]}])",
      R"([{"role": "assistant", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}])",
  };
  for (const char* messages : bad) {
    const auto rendered = render(messages);
    ASSERT_FALSE(rendered.ok()) << messages;
    EXPECT_EQ(rendered.status().code(), ErrorCode::kInvalidArgument) << messages;
  }
  EXPECT_FALSE(render(R"([{"role": "user", "content": "q"}])", R"({"not": "an array"})").ok());
}

TEST(Qwen3ChatTemplate, RefusesToolJsonNestedTooDeep) {
  Json deep = "leaf";
  for (int i = 0; i < 100000; ++i) deep = Json::array({std::move(deep)});
  const auto rendered = render_qwen3_chat(Json::parse(R"([{"role": "user", "content": "q"}])"),
                                          Json::array({std::move(deep)}), {});
  ASSERT_FALSE(rendered.ok());
  EXPECT_EQ(rendered.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(rendered.status().message().find("nested"), std::string::npos)
      << rendered.status().to_string();
}

TEST(Qwen3ChatTemplate, TreatsNullContentAsEmpty) {
  const auto rendered = render(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}])");
  ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
  EXPECT_TRUE(
      rendered->ends_with("<think>\n\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}"
                          "\n</tool_call><|im_end|>\n"))
      << *rendered;
}

}  // namespace
}  // namespace pio::runtime
