#include "pio/runtime/chat_template_qwen3.h"

#include <string_view>
#include <vector>

#include "internal/python_json.h"

namespace pio::runtime {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kToolsPreamble =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kToolsPostamble =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";

// The Python string methods the template uses.
std::string_view lstrip_newlines(std::string_view s) {
  const size_t first = s.find_first_not_of('\n');
  return first == std::string_view::npos ? std::string_view() : s.substr(first);
}
std::string_view rstrip_newlines(std::string_view s) {
  const size_t last = s.find_last_not_of('\n');
  return last == std::string_view::npos ? std::string_view() : s.substr(0, last + 1);
}
std::string_view strip_newlines(std::string_view s) { return rstrip_newlines(lstrip_newlines(s)); }
// s.split(sep)[-1] and s.split(sep)[0].
std::string_view after_last(std::string_view s, std::string_view sep) {
  const size_t at = s.rfind(sep);
  return at == std::string_view::npos ? s : s.substr(at + sep.size());
}
std::string_view before_first(std::string_view s, std::string_view sep) {
  return s.substr(0, s.find(sep));
}

// One message, checked once: role and content as strings.
struct Message {
  const Json* json;
  std::string role;
  std::string content;
};

Status message_error(size_t index, const std::string& what) {
  return invalid_argument_error("messages[" + std::to_string(index) + "]: " + what);
}

Result<std::vector<Message>> read_messages(const Json& messages) {
  if (!messages.is_array()) return invalid_argument_error("messages must be an array");
  if (messages.empty()) return invalid_argument_error("messages is empty");
  std::vector<Message> out;
  out.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    if (!m.is_object()) return message_error(i, "is not an object");
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return message_error(i, "has no string \"role\"");
    Message message{&m, role->get<std::string>(), {}};
    const auto content = m.find("content");
    if (content != m.end() && !content->is_null()) {
      if (!content->is_string()) return message_error(i, "\"content\" must be a string");
      message.content = content->get<std::string>();
    }
    out.push_back(std::move(message));
  }
  return out;
}

// The last user turn that is a real query, not a tool result passed back as a user message.
size_t last_query_index(const std::vector<Message>& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    const std::string_view content = messages[i].content;
    const bool tool_response =
        content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
    if (messages[i].role == "user" && !tool_response) return i;
  }
  return messages.size() - 1;
}

Status append_tool_calls(size_t index, const Json& calls, std::string_view content,
                         std::string& out) {
  if (!calls.is_array()) return message_error(index, "\"tool_calls\" must be an array");
  for (size_t j = 0; j < calls.size(); ++j) {
    if (j > 0 || !content.empty()) out += '\n';
    const Json* call = &calls[j];
    if (!call->is_object()) return message_error(index, "tool_calls entry is not an object");
    const auto function = call->find("function");
    if (function != call->end() && !function->is_null()) call = &*function;
    if (!call->is_object()) return message_error(index, "tool_calls function is not an object");
    const auto name = call->find("name");
    if (name == call->end() || !name->is_string()) {
      return message_error(index, "tool_calls entry has no string \"name\"");
    }
    const auto arguments = call->find("arguments");
    if (arguments == call->end())
      return message_error(index, "tool_calls entry has no \"arguments\"");
    out += "<tool_call>\n{\"name\": \"";
    out += name->get_ref<const std::string&>();
    out += "\", \"arguments\": ";
    if (arguments->is_string()) {
      out += arguments->get_ref<const std::string&>();  // already JSON text: written as given
    } else {
      PIO_RETURN_IF_ERROR(
          internal::append_python_json(*arguments, out).with_context("tool_calls arguments"));
    }
    out += "}\n</tool_call>";
  }
  return ok_status();
}

Status append_assistant(size_t index, const Message& m, bool after_last_query, bool is_last,
                        std::string& out) {
  std::string_view content = m.content;
  std::string_view reasoning;
  const auto reasoning_field = m.json->find("reasoning_content");
  if (reasoning_field != m.json->end() && !reasoning_field->is_null()) {
    if (!reasoning_field->is_string())
      return message_error(index, "\"reasoning_content\" must be a string");
    reasoning = reasoning_field->get_ref<const std::string&>();
  } else if (content.find("</think>") != std::string_view::npos) {
    const std::string_view whole = m.content;
    content = lstrip_newlines(after_last(whole, "</think>"));
    reasoning =
        lstrip_newlines(after_last(rstrip_newlines(before_first(whole, "</think>")), "<think>"));
  }
  out += "<|im_start|>";
  out += m.role;
  out += '\n';
  if (after_last_query && (is_last || !reasoning.empty())) {
    // Reasoning is shown only for the turns answering the current query; older turns lose it.
    out += "<think>\n";
    out += strip_newlines(reasoning);
    out += "\n</think>\n\n";
    out += lstrip_newlines(content);
  } else {
    out += content;
  }
  const auto calls = m.json->find("tool_calls");
  if (calls != m.json->end() && !calls->is_null() && !(calls->is_array() && calls->empty())) {
    PIO_RETURN_IF_ERROR(append_tool_calls(index, *calls, content, out));
  }
  out += "<|im_end|>\n";
  return ok_status();
}

}  // namespace

Result<std::string> render_qwen3_chat(const nlohmann::ordered_json& messages_json,
                                      const nlohmann::ordered_json& tools,
                                      const Qwen3ChatOptions& options) {
  PIO_ASSIGN_OR_RETURN(const std::vector<Message> messages, read_messages(messages_json));
  if (!tools.is_null() && !tools.is_array())
    return invalid_argument_error("tools must be an array or null");

  std::string out;
  const bool first_is_system = messages[0].role == "system";
  if (tools.is_array() && !tools.empty()) {
    out += "<|im_start|>system\n";
    if (first_is_system) {
      out += messages[0].content;
      out += "\n\n";
    }
    out += kToolsPreamble;
    for (const auto& tool : tools) {
      out += '\n';
      PIO_RETURN_IF_ERROR(internal::append_python_json(tool, out).with_context("tools"));
    }
    out += kToolsPostamble;
  } else if (first_is_system) {
    out += "<|im_start|>system\n";
    out += messages[0].content;
    out += "<|im_end|>\n";
  }

  const size_t last_query = last_query_index(messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const bool is_last = i + 1 == messages.size();
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out += "<|im_start|>";
      out += m.role;
      out += '\n';
      out += m.content;
      out += "<|im_end|>\n";
    } else if (m.role == "assistant") {
      PIO_RETURN_IF_ERROR(append_assistant(i, m, i > last_query, is_last, out));
    } else if (m.role == "tool") {
      // A run of tool results shares one user turn.
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out += m.content;
      out += "\n</tool_response>";
      if (is_last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
    // Any other role is not rendered, as in the template.
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace pio::runtime
