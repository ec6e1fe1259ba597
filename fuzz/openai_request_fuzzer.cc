// Fuzzes parse_chat_request and parse_completion_request: every body either parses into a request
// within the limits or is refused with a message (and a 4xx status).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "openai_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const pio::server::RequestLimits limits;
  auto chat = pio::server::parse_chat_request(body, limits);
  if (chat.request) {
    if (chat.request->n < 1 || chat.request->n > limits.max_n) __builtin_trap();
    if (chat.request->options.max_tokens > limits.max_tokens) __builtin_trap();
    if (chat.request->options.stop.size() > limits.max_stop) __builtin_trap();
  } else if (chat.error.message.empty() || chat.error.http_status / 100 != 4) {
    __builtin_trap();
  }
  auto completion = pio::server::parse_completion_request(body, limits);
  if (!completion.request && completion.error.message.empty()) __builtin_trap();
  return 0;
}
