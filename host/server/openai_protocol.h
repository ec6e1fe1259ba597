#pragma once
// The OpenAI HTTP API's JSON, both ways: request bodies of /v1/chat/completions and
// /v1/completions parsed strictly into Host calls, and the response, stream-chunk, model-list and
// error bodies OpenAI clients parse.
//
// Request bodies come from any client on the network, so parsing is bounded (the limits below)
// and every refusal says which field and why, as an ApiError with the HTTP status the OpenAI API
// uses. Fields OpenAI defines that change nothing here (user, logit_bias absent or empty, ...)
// are accepted and ignored, as vLLM does; unknown fields are ignored too (clients send
// vendor extras), but a known field of the wrong type or out of range is refused.
//
// What a caller gets wrong: the chat request keeps the client's `messages` and `tools` as text in
// their original key order (tool schemas are rendered back into the prompt byte for byte), so pass
// ChatRequest::chat_json to Host::chat unchanged.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/host/requests.h"
#include "pio/ipc/status.h"

namespace pio::server {

// An error as the OpenAI API reports it: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::optional<std::string> param;
  std::optional<std::string> code;
};
std::string error_body(const ApiError& error);
ApiError invalid_field(std::string param, std::string message);
// The HTTP status and OpenAI type for a Host status: invalid_argument 400, permission_denied 403,
// not_found 404, resource_exhausted 429, failed_precondition/unavailable/worker_crashed 503,
// deadline_exceeded 504, cancelled 499, everything else 500.
ApiError api_error_from(const Status& status);

struct RequestLimits {
  size_t max_messages = 512;
  uint32_t max_tokens = 8192;
  uint32_t max_n = 8;
  size_t max_stop = 4;
  size_t max_stop_bytes = 256;
  size_t max_prompt_bytes = 1u << 20;
};

// What the two generation endpoints share.
struct GenerationRequest {
  std::string model;
  host::GenerateOptions options;
  uint32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
};

struct ChatRequest : GenerationRequest {
  // {"messages": [...], "tools": [...]?, "chat_template_kwargs": {...}?}, for Host::chat.
  std::string chat_json;
};

struct CompletionRequest : GenerationRequest {
  std::string prompt;
};

// Parses a request body; the ApiError names the field at fault.
struct ChatParse {
  std::optional<ChatRequest> request;
  ApiError error;
};
ChatParse parse_chat_request(std::string_view body, const RequestLimits& limits);
struct CompletionParse {
  std::optional<CompletionRequest> request;
  ApiError error;
};
CompletionParse parse_completion_request(std::string_view body, const RequestLimits& limits);

// "stop" or "length" (the OpenAI finish_reason).
std::string_view finish_reason_text(host::FinishReason reason);

struct Choice {
  std::string text;
  host::FinishReason finish_reason = host::FinishReason::kStop;
};
struct Usage {
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

// Whole responses (stream: false).
std::string chat_completion_body(std::string_view id, int64_t created, std::string_view model,
                                 const std::vector<Choice>& choices, const Usage& usage);
std::string completion_body(std::string_view id, int64_t created, std::string_view model,
                            const std::vector<Choice>& choices, const Usage& usage);

// One server-sent event's JSON (the caller frames it as "data: <json>\n\n"). A chat stream
// starts with a role delta, then content deltas, then one chunk with the finish_reason, then
// (include_usage) a chunk with empty choices and the usage; "data: [DONE]" ends it.
std::string chat_chunk_role(std::string_view id, int64_t created, std::string_view model,
                            uint32_t index);
std::string chat_chunk_content(std::string_view id, int64_t created, std::string_view model,
                               uint32_t index, std::string_view content);
std::string chat_chunk_finish(std::string_view id, int64_t created, std::string_view model,
                              uint32_t index, host::FinishReason reason);
std::string completion_chunk(std::string_view id, int64_t created, std::string_view model,
                             uint32_t index, std::string_view text,
                             std::optional<host::FinishReason> finish);
std::string usage_chunk(std::string_view id, int64_t created, std::string_view model,
                        std::string_view object, const Usage& usage);
// The error event that ends a stream that failed after it began.
std::string stream_error_event(const ApiError& error);

// GET /v1/models.
std::string models_body(const std::vector<std::string>& model_ids, int64_t created);

}  // namespace pio::server
