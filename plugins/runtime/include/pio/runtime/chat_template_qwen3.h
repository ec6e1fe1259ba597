#pragma once
// The Qwen3 chat template (ChatML with hybrid thinking and Hermes-style tool calls), written out
// in C++ instead of run through a Jinja engine. It renders byte for byte what the chat_template of
// Qwen3's tokenizer_config.json renders under Hugging Face transformers.

#include <nlohmann/json.hpp>
#include <string>

#include "pio/ipc/status.h"

namespace pio::runtime {

struct Qwen3ChatOptions {
  // Ends the text with "<|im_start|>assistant\n" so the model answers next.
  bool add_generation_prompt = false;
  // Thinking is on unless switched off; off adds an empty "<think>\n\n</think>\n\n" to the
  // generation prompt, which is how Qwen3 is told not to think.
  bool enable_thinking = true;
};

// Renders OpenAI-style `messages` (role system/user/assistant/tool, string content, assistant
// `reasoning_content` and `tool_calls`) and `tools` (an array of tool schemas, or null/empty).
//
// What a caller would get wrong: tool schemas and tool-call arguments are written with Python's
// json.dumps, keys in the order given, so pass ordered_json parsed from the request text; a
// sorted nlohmann::json would reorder keys and change the prompt. Content that is null or missing
// counts as "" (the template itself would fail on it); content that is not a string is an error.
Result<std::string> render_qwen3_chat(const nlohmann::ordered_json& messages,
                                      const nlohmann::ordered_json& tools,
                                      const Qwen3ChatOptions& options);

}  // namespace pio::runtime
