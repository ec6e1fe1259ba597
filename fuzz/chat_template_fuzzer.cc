// chat_template_fuzzer: render_qwen3_chat on arbitrary request JSON (messages and tools come from
// tenants). Input: a JSON object {"messages": ..., "tools": ..., "add_generation_prompt": ...,
// "enable_thinking": ...}; anything else is parsed as far as it goes and rendered if it can be.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "pio/runtime/chat_template_qwen3.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto request = nlohmann::ordered_json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (!request.is_object()) return 0;
  pio::runtime::Qwen3ChatOptions options;
  const auto flag = [&](const char* name, bool fallback) {
    const auto it = request.find(name);
    return it != request.end() && it->is_boolean() ? it->get<bool>() : fallback;
  };
  options.add_generation_prompt = flag("add_generation_prompt", false);
  options.enable_thinking = flag("enable_thinking", true);
  const auto messages = request.find("messages");
  const auto tools = request.find("tools");
  (void)pio::runtime::render_qwen3_chat(
      messages == request.end() ? nlohmann::ordered_json() : *messages,
      tools == request.end() ? nlohmann::ordered_json() : *tools, options);
  return 0;
}
