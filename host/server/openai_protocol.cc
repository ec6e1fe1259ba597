#include "openai_protocol.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "json_text.h"

namespace pio::server {
namespace {

using Json = nlohmann::ordered_json;

// Deep enough for tool schemas; a deeper body is refused before it is built.
constexpr int kMaxJsonDepth = 64;

std::string dump(const Json& j) { return json_text(j); }

Json error_json(const ApiError& e) {
  Json inner = {{"message", e.message}, {"type", e.type}};
  inner["param"] = e.param ? Json(*e.param) : Json(nullptr);
  inner["code"] = e.code ? Json(*e.code) : Json(nullptr);
  return Json{{"error", inner}};
}

// Parses `body` as a JSON object, refusing nesting deeper than kMaxJsonDepth while parsing.
std::optional<Json> parse_object(std::string_view body, ApiError* error) {
  int depth = 0;
  bool too_deep = false;
  auto callback = [&](int d, Json::parse_event_t event, Json&) {
    if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
      depth = d;
      if (d > kMaxJsonDepth) too_deep = true;
    }
    return !too_deep;
  };
  Json doc = Json::parse(body.begin(), body.end(), callback, /*allow_exceptions=*/false);
  if (too_deep) {
    *error = invalid_field("", fmt::format("the body nests deeper than {} levels", kMaxJsonDepth));
    error->param.reset();
    return std::nullopt;
  }
  if (doc.is_discarded()) {
    *error = ApiError{400, "invalid_request_error",
                      "the body is not valid JSON (send a JSON object with Content-Type "
                      "application/json)",
                      std::nullopt, std::nullopt};
    return std::nullopt;
  }
  if (!doc.is_object()) {
    *error = ApiError{400, "invalid_request_error", "the body must be a JSON object", std::nullopt,
                      std::nullopt};
    return std::nullopt;
  }
  return doc;
}

bool present(const Json& body, const char* key) {
  return body.contains(key) && !body[key].is_null();
}

// Reads a number field within [lo, hi] (inclusive unless open_lo).
bool read_number(const Json& body, const char* key, double lo, double hi, bool open_lo, float* out,
                 ApiError* error) {
  if (!present(body, key)) return true;
  const Json& v = body[key];
  if (!v.is_number()) {
    *error = invalid_field(key, fmt::format("'{}' must be a number", key));
    return false;
  }
  const double x = v.get<double>();
  if (!std::isfinite(x) || x > hi || x < lo || (open_lo && x == lo)) {
    *error = invalid_field(key, fmt::format("'{}' is {}; it must be {} {} and <= {}", key, x,
                                            open_lo ? ">" : ">=", lo, hi));
    return false;
  }
  *out = static_cast<float>(x);
  return true;
}

bool read_bool(const Json& body, const char* key, bool* out, ApiError* error) {
  if (!present(body, key)) return true;
  if (!body[key].is_boolean()) {
    *error = invalid_field(key, fmt::format("'{}' must be true or false", key));
    return false;
  }
  *out = body[key].get<bool>();
  return true;
}

// The fields both endpoints take.
bool parse_common(const Json& body, const RequestLimits& limits, GenerationRequest* r,
                  ApiError* error) {
  if (!body.contains("model") || !body["model"].is_string() ||
      body["model"].get_ref<const std::string&>().empty()) {
    *error = invalid_field("model", "'model' is required: the name of a model from /v1/models");
    return false;
  }
  r->model = body["model"].get<std::string>();

  // max_completion_tokens is the newer name; either is accepted, the newer wins.
  r->options.max_tokens = std::min<uint32_t>(limits.max_tokens, 512);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (!present(body, key)) continue;
    const Json& v = body[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > limits.max_tokens) {
      *error = invalid_field(
          key, fmt::format("'{}' must be an integer from 1 to {}", key, limits.max_tokens));
      return false;
    }
    r->options.max_tokens = v.get<uint32_t>();
  }
  if (!read_number(body, "temperature", 0.0, 2.0, false, &r->options.temperature, error) ||
      !read_number(body, "top_p", 0.0, 1.0, true, &r->options.top_p, error) ||
      !read_number(body, "min_p", 0.0, 1.0, false, &r->options.min_p, error) ||
      !read_number(body, "presence_penalty", -2.0, 2.0, false, &r->options.presence_penalty,
                   error) ||
      !read_number(body, "frequency_penalty", -2.0, 2.0, false, &r->options.frequency_penalty,
                   error) ||
      !read_number(body, "repetition_penalty", 0.0, 10.0, true, &r->options.repetition_penalty,
                   error)) {
    return false;
  }
  if (present(body, "top_k")) {
    const Json& v = body["top_k"];
    if (!v.is_number_integer() || v.get<int64_t>() < -1 || v.get<int64_t>() > (1 << 20)) {
      *error = invalid_field("top_k", "'top_k' must be an integer >= -1 (-1 or 0: off)");
      return false;
    }
    r->options.top_k = std::max<int32_t>(0, v.get<int32_t>());
  }
  if (present(body, "n")) {
    const Json& v = body["n"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > limits.max_n) {
      *error = invalid_field("n", fmt::format("'n' must be an integer from 1 to {}", limits.max_n));
      return false;
    }
    r->n = v.get<uint32_t>();
  }
  if (present(body, "seed")) {
    const Json& v = body["seed"];
    if (!v.is_number_integer()) {
      *error = invalid_field("seed", "'seed' must be an integer");
      return false;
    }
    r->options.seed =
        v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  }
  if (present(body, "stop")) {
    const Json& v = body["stop"];
    std::vector<std::string> stop;
    if (v.is_string()) {
      stop.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      for (const Json& s : v) {
        if (!s.is_string()) {
          *error = invalid_field("stop", "'stop' must be a string or an array of strings");
          return false;
        }
        stop.push_back(s.get<std::string>());
      }
    } else {
      *error = invalid_field("stop", "'stop' must be a string or an array of strings");
      return false;
    }
    if (stop.size() > limits.max_stop) {
      *error = invalid_field("stop", fmt::format("at most {} stop sequences", limits.max_stop));
      return false;
    }
    for (const std::string& s : stop) {
      if (s.empty() || s.size() > limits.max_stop_bytes) {
        *error = invalid_field("stop", fmt::format("each stop sequence must have 1 to {} bytes",
                                                   limits.max_stop_bytes));
        return false;
      }
    }
    r->options.stop = std::move(stop);
  }
  if (!read_bool(body, "stream", &r->stream, error) ||
      !read_bool(body, "logprobs", &r->logprobs, error)) {
    return false;
  }
  if (r->logprobs) {
    *error = invalid_field("logprobs", "'logprobs' is not supported by this server yet; omit it");
    return false;
  }
  if (present(body, "stream_options")) {
    const Json& v = body["stream_options"];
    if (!v.is_object()) {
      *error = invalid_field("stream_options", "'stream_options' must be an object");
      return false;
    }
    if (!read_bool(v, "include_usage", &r->include_usage, error)) {
      error->param = "stream_options.include_usage";
      return false;
    }
  }
  if (present(body, "user") && !body["user"].is_string()) {
    *error = invalid_field("user", "'user' must be a string");
    return false;
  }
  return true;
}

// Chat content: a string, null, or an array of {"type": "text", "text"} parts (joined).
bool normalize_content(Json& message, size_t index, ApiError* error) {
  if (!message.contains("content") || message["content"].is_null() ||
      message["content"].is_string()) {
    return true;
  }
  const std::string param = fmt::format("messages[{}].content", index);
  if (!message["content"].is_array()) {
    *error = invalid_field(param, "content must be a string or an array of text parts");
    return false;
  }
  std::string text;
  for (const Json& part : message["content"]) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      *error = invalid_field(param,
                             "only text content parts ({\"type\": \"text\", \"text\"}) "
                             "are supported by text models");
      return false;
    }
    text += part["text"].get<std::string>();
  }
  message["content"] = text;
  return true;
}

}  // namespace

std::string error_body(const ApiError& error) { return dump(error_json(error)); }

ApiError invalid_field(std::string param, std::string message) {
  return ApiError{400, "invalid_request_error", std::move(message), std::move(param), std::nullopt};
}

ApiError api_error_from(const Status& status) {
  ApiError e;
  e.message = status.message();
  e.code = std::string(error_code_name(status.code()));
  switch (status.code()) {
    case ErrorCode::kInvalidArgument:
      e.http_status = 400;
      e.type = "invalid_request_error";
      break;
    case ErrorCode::kPermissionDenied:
      e.http_status = 403;
      e.type = "permission_error";
      break;
    case ErrorCode::kNotFound:
      e.http_status = 404;
      e.type = "not_found_error";
      break;
    case ErrorCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      break;
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kUnavailable:
    case ErrorCode::kWorkerCrashed:
      e.http_status = 503;
      e.type = "service_unavailable";
      break;
    case ErrorCode::kDeadlineExceeded:
      e.http_status = 504;
      e.type = "timeout";
      break;
    case ErrorCode::kCancelled:
      e.http_status = 499;
      e.type = "cancelled";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

ChatParse parse_chat_request(std::string_view body, const RequestLimits& limits) {
  ChatParse out;
  std::optional<Json> doc = parse_object(body, &out.error);
  if (!doc) return out;
  ChatRequest r;
  if (!parse_common(*doc, limits, &r, &out.error)) return out;
  if (!doc->contains("messages") || !(*doc)["messages"].is_array() || (*doc)["messages"].empty()) {
    out.error = invalid_field("messages", "'messages' must be a non-empty array of messages");
    return out;
  }
  Json& messages = (*doc)["messages"];
  if (messages.size() > limits.max_messages) {
    out.error = invalid_field("messages", fmt::format("at most {} messages", limits.max_messages));
    return out;
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    Json& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      out.error =
          invalid_field(fmt::format("messages[{}].role", i), "every message needs a string 'role'");
      return out;
    }
    const std::string role = m["role"].get<std::string>();
    if (role == "developer") m["role"] = "system";  // the newer name for the system role
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" &&
        role != "tool") {
      out.error = invalid_field(fmt::format("messages[{}].role", i),
                                fmt::format("role '{}' is not one of system, developer, user, "
                                            "assistant, tool",
                                            role));
      return out;
    }
    if (!normalize_content(m, i, &out.error)) return out;
  }
  Json chat = {{"messages", messages}};
  if (present(*doc, "tools")) {
    if (!(*doc)["tools"].is_array()) {
      out.error = invalid_field("tools", "'tools' must be an array of tool definitions");
      return out;
    }
    if (!(*doc)["tools"].empty()) chat["tools"] = (*doc)["tools"];
  }
  if (present(*doc, "chat_template_kwargs")) {
    if (!(*doc)["chat_template_kwargs"].is_object()) {
      out.error = invalid_field("chat_template_kwargs", "'chat_template_kwargs' must be an object");
      return out;
    }
    chat["chat_template_kwargs"] = (*doc)["chat_template_kwargs"];
  }
  r.chat_json = dump(chat);
  if (r.chat_json.size() > limits.max_prompt_bytes) {
    out.error = invalid_field(
        "messages", fmt::format("the conversation is over {} bytes", limits.max_prompt_bytes));
    return out;
  }
  out.request = std::move(r);
  return out;
}

CompletionParse parse_completion_request(std::string_view body, const RequestLimits& limits) {
  CompletionParse out;
  std::optional<Json> doc = parse_object(body, &out.error);
  if (!doc) return out;
  CompletionRequest r;
  if (!parse_common(*doc, limits, &r, &out.error)) return out;
  const Json* prompt = doc->contains("prompt") ? &(*doc)["prompt"] : nullptr;
  if (prompt != nullptr && prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    prompt = &(*prompt)[0];
  }
  if (prompt == nullptr || !prompt->is_string()) {
    out.error = invalid_field("prompt", "'prompt' must be a string (or an array of one string)");
    return out;
  }
  r.prompt = prompt->get<std::string>();
  if (r.prompt.empty() || r.prompt.size() > limits.max_prompt_bytes) {
    out.error = invalid_field(
        "prompt", fmt::format("'prompt' must have 1 to {} bytes", limits.max_prompt_bytes));
    return out;
  }
  bool echo = false;
  if (!read_bool(*doc, "echo", &echo, &out.error)) return out;
  if (echo) {
    out.error = invalid_field("echo", "'echo' is not supported; omit it");
    return out;
  }
  if (present(*doc, "suffix")) {
    out.error = invalid_field("suffix", "'suffix' is not supported; omit it");
    return out;
  }
  out.request = std::move(r);
  return out;
}

std::string_view finish_reason_text(host::FinishReason reason) {
  return reason == host::FinishReason::kLength ? "length" : "stop";
}

namespace {

Json usage_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

Json head(std::string_view id, std::string_view object, int64_t created, std::string_view model) {
  return Json{{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

}  // namespace

std::string chat_completion_body(std::string_view id, int64_t created, std::string_view model,
                                 const std::vector<Choice>& choices, const Usage& usage) {
  Json j = head(id, "chat.completion", created, model);
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    list.push_back({{"index", i},
                    {"message", {{"role", "assistant"}, {"content", choices[i].text}}},
                    {"logprobs", nullptr},
                    {"finish_reason", finish_reason_text(choices[i].finish_reason)}});
  }
  j["choices"] = std::move(list);
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string completion_body(std::string_view id, int64_t created, std::string_view model,
                            const std::vector<Choice>& choices, const Usage& usage) {
  Json j = head(id, "text_completion", created, model);
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    list.push_back({{"index", i},
                    {"text", choices[i].text},
                    {"logprobs", nullptr},
                    {"finish_reason", finish_reason_text(choices[i].finish_reason)}});
  }
  j["choices"] = std::move(list);
  j["usage"] = usage_json(usage);
  return dump(j);
}

namespace {

std::string chat_chunk(std::string_view id, int64_t created, std::string_view model, uint32_t index,
                       Json delta, Json finish) {
  Json j = head(id, "chat.completion.chunk", created, model);
  j["choices"] = Json::array({Json{{"index", index},
                                   {"delta", std::move(delta)},
                                   {"logprobs", nullptr},
                                   {"finish_reason", std::move(finish)}}});
  return dump(j);
}

}  // namespace

std::string chat_chunk_role(std::string_view id, int64_t created, std::string_view model,
                            uint32_t index) {
  return chat_chunk(id, created, model, index, {{"role", "assistant"}, {"content", ""}}, nullptr);
}

std::string chat_chunk_content(std::string_view id, int64_t created, std::string_view model,
                               uint32_t index, std::string_view content) {
  return chat_chunk(id, created, model, index, {{"content", content}}, nullptr);
}

std::string chat_chunk_finish(std::string_view id, int64_t created, std::string_view model,
                              uint32_t index, host::FinishReason reason) {
  return chat_chunk(id, created, model, index, Json::object(), finish_reason_text(reason));
}

std::string completion_chunk(std::string_view id, int64_t created, std::string_view model,
                             uint32_t index, std::string_view text,
                             std::optional<host::FinishReason> finish) {
  Json j = head(id, "text_completion", created, model);
  j["choices"] = Json::array(
      {Json{{"index", index},
            {"text", text},
            {"logprobs", nullptr},
            {"finish_reason", finish ? Json(finish_reason_text(*finish)) : Json(nullptr)}}});
  return dump(j);
}

std::string usage_chunk(std::string_view id, int64_t created, std::string_view model,
                        std::string_view object, const Usage& usage) {
  Json j = head(id, object, created, model);
  j["choices"] = Json::array();
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string stream_error_event(const ApiError& error) {
  Json j = error_json(error);
  j["error"]["status"] = error.http_status;
  return dump(j);
}

std::string models_body(const std::vector<std::string>& model_ids, int64_t created) {
  Json data = Json::array();
  for (const std::string& id : model_ids) {
    data.push_back({{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "pio"}});
  }
  return dump(Json{{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace pio::server
