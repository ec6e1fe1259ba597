#pragma once
// Command: one `pio` subcommand as main() sees it: the CLI11 sub-app that parses its options and
// the work to run once parsing succeeded. Each subcommand family's file adds its own.
//
// The one thing a caller gets wrong: the Status a command returns decides the exit code
// (exit_code_for), so a command reports bad input as invalid_argument and nothing else.

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<Status()> run;
};

// Exit codes: 0 ok; 1 the usage or the input is wrong (fix it, retrying never helps); 2 it failed
// while running (the host, the worker or the plugin); 130 interrupted by Ctrl-C (128 + SIGINT, as
// a shell reports a command that SIGINT ended).
inline constexpr int kExitBadInput = 1;
inline constexpr int kExitRuntime = 2;
inline constexpr int kExitInterrupted = 130;
inline int exit_code_for(const Status& status) {
  if (status.ok()) return 0;
  if (status.code() == ErrorCode::kCancelled) return kExitInterrupted;
  return status.code() == ErrorCode::kInvalidArgument ? kExitBadInput : kExitRuntime;
}

void add_list_command(CLI::App& app, std::vector<Command>* commands);
// generate, chat
void add_text_commands(CLI::App& app, std::vector<Command>* commands);
// tokenize, render-chat
void add_tokenizer_commands(CLI::App& app, std::vector<Command>* commands);
// serve
void add_serve_command(CLI::App& app, std::vector<Command>* commands);
void add_inspect_command(CLI::App& app, std::vector<Command>* commands);
void add_doctor_command(CLI::App& app, std::vector<Command>* commands);
void add_bench_command(CLI::App& app, std::vector<Command>* commands);

}  // namespace pio::cli
