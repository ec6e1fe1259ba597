// pio tokenize, pio render-chat: the plugin's tokenizer and chat template, run inside the
// sandboxed worker (the tokenizer files are model data, parsed where the plugin's code runs).
// The plugin is activated with {"load_weights": false}, so no weights are read.

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_host.h"
#include "command.h"
#include "fmt/format.h"
#include "json_output.h"

namespace pio::cli {

namespace {

using nlohmann::ordered_json;

constexpr const char* kTokenizerOnlyConfig = R"({"load_weights": false})";

struct InputCommand {
  HostOptions host;
  PluginOptions plugin;
  bool jsonl = false;
};

// Calls `each(document_text, where)` for every input: each non-empty stdin line with --jsonl,
// else all of stdin as one document. `where` names the input in messages ("line 3").
template <typename Each>
Status for_each_input(bool jsonl, Each each) {
  if (!jsonl) {
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return each(all, std::string("stdin"));
  }
  std::string line;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    PIO_RETURN_IF_ERROR(each(line, fmt::format("line {}", n)));
  }
  return ok_status();
}

Result<ordered_json> parse_object(const std::string& text, const std::string& where,
                                  std::string_view expected) {
  ordered_json value = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    return invalid_argument_error(fmt::format("{}: expected a JSON object {}", where, expected));
  }
  return value;
}

// The worker's JSON answer, copied out of shared memory before it is parsed (requests.h).
Result<ordered_json> answer_of(const host::InferOutputs& out, std::string_view command,
                               std::string_view field) {
  ordered_json answer = ordered_json::parse(std::string(out.json()), nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || !answer.contains(field)) {
    return internal_error(fmt::format("{}: the plugin's answer has no \"{}\"", command, field));
  }
  return std::move(answer[std::string(field)]);
}

Status run_tokenize(const InputCommand& c) {
  PIO_ASSIGN_OR_RETURN(RunningPlugin running,
                       RunningPlugin::start(c.host, c.plugin, kTokenizerOnlyConfig));
  return for_each_input(c.jsonl, [&](const std::string& input, const std::string& where) -> Status {
    std::string text = input;
    if (c.jsonl) {
      PIO_ASSIGN_OR_RETURN(ordered_json line, parse_object(input, where, "{\"text\": \"...\"}"));
      if (!line.contains("text") || !line["text"].is_string()) {
        return invalid_argument_error(fmt::format("{}: expected {{\"text\": \"...\"}}", where));
      }
      text = line["text"].get<std::string>();
    }
    // The SDK's tokenize verb: every text plugin has it (echo too), and for plugins with a
    // "tokenize" command of their own (qwen3) it is the same encoder.
    host::InferRequest request;
    request.command = "pio.tokenize";
    request.params_json = json_line({{"text", text}});
    PIO_ASSIGN_OR_RETURN(host::InferOutputs out,
                         running.host().execute_plugin(running.name(), std::move(request)));
    PIO_ASSIGN_OR_RETURN(ordered_json ids, answer_of(out, "tokenize", "token_ids"));
    std::fputs(json_line({{"ids", std::move(ids)}}).c_str(), stdout);
    (void)std::fflush(stdout);
    return ok_status();
  });
}

Status run_render_chat(const InputCommand& c) {
  PIO_ASSIGN_OR_RETURN(RunningPlugin running,
                       RunningPlugin::start(c.host, c.plugin, kTokenizerOnlyConfig));
  return for_each_input(c.jsonl, [&](const std::string& input, const std::string& where) -> Status {
    // Checked here for a clear message, but sent as the caller wrote it: the order of keys in a
    // tool's schema shows in the rendered prompt, and re-serialising could reorder them.
    PIO_ASSIGN_OR_RETURN(ordered_json params,
                         parse_object(input, where,
                                      "{\"messages\", \"tools\", \"add_generation_prompt\", "
                                      "\"enable_thinking\"}"));
    if (!params.contains("messages") || !params["messages"].is_array()) {
      return invalid_argument_error(fmt::format("{}: needs a \"messages\" array", where));
    }
    host::InferRequest request;
    request.command = "render_chat";
    request.params_json = input;
    auto out = running.host().execute_plugin(running.name(), std::move(request));
    if (!out.ok()) return out.status().with_context(where);
    PIO_ASSIGN_OR_RETURN(ordered_json rendered, answer_of(*out, "render_chat", "rendered"));
    std::fputs(json_line({{"rendered", std::move(rendered)}}).c_str(), stdout);
    (void)std::fflush(stdout);
    return ok_status();
  });
}

CLI::App* add_input_command(CLI::App& app, const char* name, const char* description,
                            const char* jsonl_help, const std::shared_ptr<InputCommand>& c) {
  CLI::App* sub = app.add_subcommand(name, description);
  add_host_options(sub, &c->host);
  add_plugin_options(sub, &c->plugin);
  sub->add_flag("--jsonl", c->jsonl, jsonl_help);
  return sub;
}

}  // namespace

void add_tokenizer_commands(CLI::App& app, std::vector<Command>* commands) {
  auto tokenize = std::make_shared<InputCommand>();
  CLI::App* sub = add_input_command(
      app, "tokenize", "Token ids of stdin's text: one JSON line {\"ids\": [...]} per input",
      "Read JSON lines {\"text\": ...} (default: all of stdin is one text)", tokenize);
  commands->push_back({sub, [tokenize] { return run_tokenize(*tokenize); }});

  auto render = std::make_shared<InputCommand>();
  sub = add_input_command(
      app, "render-chat", "Render the chat template: one JSON line {\"rendered\": ...} per input",
      "Read JSON lines {messages, tools, add_generation_prompt, enable_thinking} (default: "
      "stdin is one such document)",
      render);
  commands->push_back({sub, [render] { return run_render_chat(*render); }});
}

}  // namespace pio::cli
