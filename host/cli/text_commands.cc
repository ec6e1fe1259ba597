// pio generate, pio chat: text generation through Host::generate_stream and Host::chat, streamed
// to stdout as the worker produces it.

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli_host.h"
#include "command.h"
#include "interrupt.h"
#include "json_output.h"
#include "terminal_text.h"

namespace pio::cli {

namespace {

using nlohmann::ordered_json;

struct SamplingOptions {
  uint32_t max_tokens = 256;
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;

  host::GenerateOptions to_generate_options() const {
    host::GenerateOptions g;
    g.max_tokens = max_tokens;
    g.temperature = temperature;
    g.top_k = top_k;
    g.top_p = top_p;
    g.seed = seed;
    g.stop = stop;
    return g;
  }
};

void add_sampling_options(CLI::App* app, SamplingOptions* o) {
  app->add_option("--max-tokens", o->max_tokens, "Most tokens to generate")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str()
      ->group("Sampling");
  app->add_option("--temperature", o->temperature, "0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f))
      ->capture_default_str()
      ->group("Sampling");
  app->add_option("--top-k", o->top_k, "Keep the k likeliest tokens (0 = all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group("Sampling");
  app->add_option("--top-p", o->top_p, "Nucleus sampling mass")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str()
      ->group("Sampling");
  app->add_option("--seed", o->seed, "Sampling seed (default: random)")->group("Sampling");
  // One value per --stop, so that `--stop X PROMPT` leaves PROMPT alone.
  app->add_option("--stop", o->stop, "Stop when the text ends with S (repeatable)")
      ->allow_extra_args(false)
      ->group("Sampling");
}

// Writes each chunk as it comes (unless `quiet`), without terminal controls (the plugin's text),
// and cancels the generation after Ctrl-C. Runs on the Host's loop thread (requests.h): no Host
// calls here.
host::TokenCallback stream_chunks(bool quiet) {
  return [quiet](const host::TokenChunk& chunk) {
    if (!quiet) {
      const std::string shown = terminal_text(chunk.text);
      (void)std::fwrite(shown.data(), 1, shown.size(), stdout);
      (void)std::fflush(stdout);
    }
    return !interrupt::cancelled();
  };
}

struct GenerateCommand {
  HostOptions host;
  PluginOptions plugin;
  SamplingOptions sampling;
  std::string prompt;
  bool json = false;
};

Status run_generate(const GenerateCommand& c) {
  PIO_ASSIGN_OR_RETURN(RunningPlugin running, RunningPlugin::start(c.host, c.plugin));
  const host::GenerateOptions options = c.sampling.to_generate_options();
  interrupt::arm();
  auto result =
      running.host().generate_stream(running.name(), c.prompt, options, stream_chunks(c.json));
  const bool interrupted = interrupt::disarm();
  if (c.json && result.ok() && !interrupted) {
    const host::GenerateResult& r = *result;
    std::fputs(json_line({{"text", r.text},
                          {"token_ids", r.token_ids},
                          {"finish_reason", host::finish_reason_name(r.finish_reason)},
                          {"prompt_tokens", r.prompt_tokens},
                          {"completion_tokens", r.completion_tokens}})
                   .c_str(),
               stdout);
    return ok_status();
  }
  // The newline ends what was streamed, also when the generation failed half way.
  if (!c.json) std::fputc('\n', stdout);
  (void)std::fflush(stdout);
  if (interrupted) return cancelled_error("interrupted");
  return result.status();
}

struct ChatCommand {
  HostOptions host;
  PluginOptions plugin;
  SamplingOptions sampling;
  std::string system;
  bool no_thinking = false;
};

Status run_chat(const ChatCommand& c) {
  PIO_ASSIGN_OR_RETURN(RunningPlugin running, RunningPlugin::start(c.host, c.plugin));
  const host::GenerateOptions options = c.sampling.to_generate_options();
  const bool interactive = ::isatty(STDIN_FILENO) == 1;
  ordered_json messages = ordered_json::array();
  if (!c.system.empty()) messages.push_back({{"role", "system"}, {"content", c.system}});
  std::string line;
  while (true) {
    if (interactive) {
      std::fputs("> ", stdout);
      (void)std::fflush(stdout);
    }
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    // Host::chat takes the bare messages array, or the object form when template kwargs go along.
    const ordered_json request =
        c.no_thinking ? ordered_json{{"messages", messages},
                                     {"chat_template_kwargs", {{"enable_thinking", false}}}}
                      : messages;
    // Ctrl-C ends this answer only; the partial answer stays in the history as it was shown.
    interrupt::arm();
    auto answer =
        running.host().chat(running.name(), json_line(request), options, stream_chunks(false));
    interrupt::disarm();
    std::fputc('\n', stdout);
    (void)std::fflush(stdout);
    if (!answer.ok()) return answer.status();
    messages.push_back({{"role", "assistant"}, {"content", answer->text}});
  }
  return ok_status();
}

}  // namespace

void add_text_commands(CLI::App& app, std::vector<Command>* commands) {
  {
    CLI::App* sub =
        app.add_subcommand("generate", "Generate text from a prompt, streamed to stdout");
    auto c = std::make_shared<GenerateCommand>();
    add_host_options(sub, &c->host);
    add_plugin_options(sub, &c->plugin);
    add_sampling_options(sub, &c->sampling);
    sub->add_flag("--json", c->json,
                  "Print one JSON line {text, token_ids, finish_reason, prompt_tokens, "
                  "completion_tokens} at the end instead of streaming");
    sub->add_option("prompt", c->prompt, "The prompt text")->required();
    commands->push_back({sub, [c] { return run_generate(*c); }});
  }
  {
    CLI::App* sub = app.add_subcommand(
        "chat", "Chat: one user message per stdin line, until EOF or /exit; keeps the history");
    auto c = std::make_shared<ChatCommand>();
    add_host_options(sub, &c->host);
    add_plugin_options(sub, &c->plugin);
    add_sampling_options(sub, &c->sampling);
    sub->add_option("--system", c->system, "System message at the start of the conversation");
    sub->add_flag("--no-thinking", c->no_thinking,
                  "Render the chat template with enable_thinking=false");
    commands->push_back({sub, [c] { return run_chat(*c); }});
  }
}

}  // namespace pio::cli
