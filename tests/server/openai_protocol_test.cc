#include "openai_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pio::server {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

TEST(OpenAiProtocol, AChatRequestKeepsToolSchemaKeyOrderAndMapsEveryField) {
  const std::string body = R"({"model": "m", "messages": [{"role": "developer", "content": "s"},
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}],
    "max_completion_tokens": 7, "temperature": 0.2, "top_p": 0.5, "top_k": -1, "n": 2,
    "stop": "END", "seed": -1, "presence_penalty": 1.5, "frequency_penalty": -0.5,
    "stream": true, "stream_options": {"include_usage": true}, "user": "u", "logit_bias": {}})";
  ChatParse p = parse_chat_request(body, {});
  ASSERT_TRUE(p.request) << p.error.message;
  const ChatRequest& r = *p.request;
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.options.max_tokens, 7u);
  EXPECT_FLOAT_EQ(r.options.temperature, 0.2f);
  EXPECT_FLOAT_EQ(r.options.top_p, 0.5f);
  EXPECT_EQ(r.options.top_k, 0);
  EXPECT_EQ(r.n, 2u);
  EXPECT_EQ(r.options.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.options.seed, static_cast<uint64_t>(-1));
  EXPECT_FLOAT_EQ(r.options.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r.options.frequency_penalty, -0.5f);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  const Json chat = Json::parse(r.chat_json);
  EXPECT_EQ(chat["messages"][0]["role"], "system");  // developer is the newer name
  EXPECT_EQ(chat["messages"][1]["content"], "ab");   // text parts joined
  EXPECT_THAT(r.chat_json, HasSubstr(R"("parameters":{"z":1,"a":2})"));
}

TEST(OpenAiProtocol, EveryBadFieldIsRefusedNamingIt) {
  const RequestLimits limits;
  const std::pair<const char*, const char*> cases[] = {
      {R"({"messages": [{"role": "user", "content": "x"}]})", "model"},
      {R"({"model": "m"})", "messages"},
      {R"({"model": "m", "messages": "hi"})", "messages"},
      {R"({"model": "m", "messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"model": "m", "messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"})",
       "temperature"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100000})",
       "max_tokens"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 99})", "n"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]})", "stop"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]})",
       "stop"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"})",
       "stream"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": 1}})",
       "stream_options.include_usage"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {}})", "tools"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 1.5})", "seed"},
  };
  for (const auto& [body, param] : cases) {
    ChatParse p = parse_chat_request(body, limits);
    EXPECT_FALSE(p.request) << body;
    EXPECT_EQ(p.error.http_status, 400) << body;
    EXPECT_EQ(p.error.param.value_or("<none>"), param) << body << ": " << p.error.message;
    EXPECT_FALSE(p.error.message.empty());
  }
}

TEST(OpenAiProtocol, BodiesThatAreNotObjectsOrNestTooDeepAreRefused) {
  for (const std::string& body : std::vector<std::string>{
           "", "[]", "42", "{\"model\": ", std::string(100, '[') + std::string(100, ']')}) {
    ChatParse p = parse_chat_request(body, {});
    EXPECT_FALSE(p.request) << body;
    EXPECT_EQ(p.error.http_status, 400);
  }
  std::string deep = R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "x": )";
  deep += std::string(200, '[') + std::string(200, ']') + "}";
  ChatParse p = parse_chat_request(deep, {});
  EXPECT_FALSE(p.request);
  EXPECT_THAT(p.error.message, HasSubstr("nests deeper"));
}

TEST(OpenAiProtocol, ACompletionTakesAStringOrOneStringInAnArray) {
  auto a = parse_completion_request(R"({"model": "m", "prompt": "hi"})", {});
  ASSERT_TRUE(a.request);
  EXPECT_EQ(a.request->prompt, "hi");
  auto b = parse_completion_request(R"({"model": "m", "prompt": ["hi"]})", {});
  ASSERT_TRUE(b.request);
  EXPECT_EQ(b.request->prompt, "hi");
  auto c = parse_completion_request(R"({"model": "m", "prompt": [1, 2]})", {});
  EXPECT_EQ(c.error.param.value_or(""), "prompt");
  auto d = parse_completion_request(R"({"model": "m", "prompt": "x", "echo": true})", {});
  EXPECT_EQ(d.error.param.value_or(""), "echo");
}

TEST(OpenAiProtocol, HostErrorsMapToTheStatusAnOpenAiClientExpects) {
  EXPECT_EQ(api_error_from(invalid_argument_error("x")).http_status, 400);
  EXPECT_EQ(api_error_from(not_found_error("x")).http_status, 404);
  EXPECT_EQ(api_error_from(resource_exhausted_error("x")).http_status, 429);
  EXPECT_EQ(api_error_from(unavailable_error("x")).http_status, 503);
  EXPECT_EQ(api_error_from(deadline_exceeded_error("x")).http_status, 504);
  EXPECT_EQ(api_error_from(internal_error("x")).http_status, 500);
  const ApiError crashed = api_error_from(Status(ErrorCode::kWorkerCrashed, "boom"));
  EXPECT_EQ(crashed.http_status, 503);
  EXPECT_EQ(crashed.code.value_or(""), "worker_crashed");
}

TEST(OpenAiProtocol, ResponsesHaveTheOpenAiShape) {
  const Json chat =
      Json::parse(chat_completion_body("id1", 5, "m", {{"hi", host::FinishReason::kLength}},
                                       {.prompt_tokens = 3, .completion_tokens = 2}));
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chat["usage"]["total_tokens"], 5);
  const Json chunk = Json::parse(chat_chunk_content("id1", 5, "m", 0, "x"));
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "x");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  const Json error = Json::parse(error_body(invalid_field("top_p", "bad")));
  EXPECT_EQ(error["error"]["param"], "top_p");
  EXPECT_EQ(error["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(error["error"]["code"].is_null());
}

}  // namespace
}  // namespace pio::server
