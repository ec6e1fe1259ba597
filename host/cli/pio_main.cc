// pio: the command line of the host. Each subcommand starts its own pio::Host, runs one plugin in
// its sandboxed worker, and stops it again on the way out.
//
//   pio list                                   the plugins found, and what was skipped
//   pio generate --model DIR [--plugin NAME] PROMPT
//   pio chat --model DIR [--system TEXT] [--no-thinking]
//   pio tokenize --model DIR [--jsonl]         < text
//   pio render-chat --model DIR [--jsonl]      < {"messages": [...]}
//   pio serve --model DIR [--port N]           the OpenAI-compatible HTTP API
//   pio inspect PLUGIN [--model DIR] [--json]  one plugin's manifest, digest, trust and limits
//   pio doctor [--config FILE] [--json]        which trust levels this machine can run
//   pio bench --model DIR [--runs N]           a quick prefill/decode check (not scripts/bench.sh)
//
// Errors go to stderr as "pio <command>: <message>"; exit 1 when the usage or the input is wrong,
// 2 when running failed, 130 after Ctrl-C (command.h).

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "command.h"
#include "interrupt.h"
#include "terminal_text.h"

namespace {

// The subcommand named on the command line, for messages about a parse that failed half way.
std::string command_name(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.starts_with("-")) continue;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->get_name() == arg) return "pio " + arg;
    }
    break;
  }
  return "pio";
}

int run(int argc, char** argv) {
  pio::cli::interrupt::install();  // before any thread: the Host's loop thread inherits the mask
  CLI::App app("pio: run LLM model plugins in sandboxed worker processes", "pio");
  app.require_subcommand(1);
  std::vector<pio::cli::Command> commands;
  pio::cli::add_list_command(app, &commands);
  pio::cli::add_text_commands(app, &commands);
  pio::cli::add_tokenizer_commands(app, &commands);
  pio::cli::add_serve_command(app, &commands);
  pio::cli::add_inspect_command(app, &commands);
  pio::cli::add_doctor_command(app, &commands);
  pio::cli::add_bench_command(app, &commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", command_name(app, argc, argv).c_str(), e.what());
    return pio::cli::kExitBadInput;
  }

  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    const pio::Status status = command.run();
    if (!status.ok()) {
      // A failure can quote the worker (its error message, its last stderr lines).
      std::fprintf(stderr, "pio %s: %s\n", command.app->get_name().c_str(),
                   pio::cli::terminal_text(status.to_string()).c_str());
    }
    return pio::cli::exit_code_for(status);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing may escape main (STYLE.md): CLI11 and nlohmann throw, and so can the standard library.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pio: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pio: internal error: unknown exception\n");
  }
  return pio::cli::kExitRuntime;
}
