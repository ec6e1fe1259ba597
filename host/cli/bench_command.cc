// pio bench: the operator's quick decode check through the sandboxed worker. It runs a few
// greedy generations of a fixed length after a prompt of about N words, and times each from the
// streamed chunks' arrival (Host::generate_stream): the first chunk ends the prefill (time to
// first token, IPC and sandbox included), the rest is the decode rate.
//
// Not a benchmark in the STYLE.md sense (no baseline, no ratio): scripts/bench.sh is. This says
// "the model runs on this machine at about this speed", and the help says so.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_host.h"
#include "command.h"
#include "fmt/format.h"
#include "interrupt.h"
#include "json_output.h"

namespace pio::cli {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

// Common English words, each one token in the usual BPE vocabularies, so that N words make a
// prompt of about N tokens (plugins report the exact count: prompt_tokens).
std::string prompt_of_words(uint32_t words) {
  static constexpr const char* kWords[] = {
      "the",  "quick", "brown", "fox", "jumps", "over",  "a",    "lazy", "dog",   "and", "then",
      "runs", "back",  "to",    "the", "old",   "house", "near", "the",  "river", "in",  "town"};
  std::string prompt;
  for (uint32_t i = 0; i < words; ++i) {
    if (i > 0) prompt += ' ';
    prompt += kWords[i % std::size(kWords)];
  }
  return prompt;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct RunTiming {
  double prefill_ms = 0;
  double decode_tokens_per_s = 0;
  double total_ms = 0;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

// When each chunk arrived. Written by the callback on the Host's loop thread, read after
// generate_stream returned (which waits for the loop to finish the request).
struct ChunkClock {
  Clock::time_point first, last;
  size_t first_tokens = 0;
  size_t tokens = 0;
  size_t chunks = 0;
};

struct BenchCommand {
  HostOptions host;
  PluginOptions plugin;
  uint32_t prompt_words = 128;
  uint32_t new_tokens = 64;
  uint32_t runs = 3;
  bool json = false;
};

Result<RunTiming> time_one_run(RunningPlugin& running, const std::string& prompt,
                               const host::GenerateOptions& options, uint32_t run) {
  ChunkClock clock;
  const Clock::time_point start = Clock::now();
  interrupt::arm();
  auto result = running.host().generate_stream(running.name(), prompt, options,
                                               [&clock](const host::TokenChunk& chunk) {
                                                 const Clock::time_point now = Clock::now();
                                                 if (clock.chunks++ == 0) {
                                                   clock.first = now;
                                                   clock.first_tokens = chunk.token_ids.size();
                                                 }
                                                 clock.last = now;
                                                 clock.tokens += chunk.token_ids.size();
                                                 return !interrupt::cancelled();
                                               });
  const Clock::time_point end = Clock::now();
  if (interrupt::disarm()) return cancelled_error("interrupted");
  if (!result.ok()) return result.status().with_context(fmt::format("run {}", run));

  // The decode rate needs at least one token after the first chunk, and time between them.
  const size_t decode_tokens = clock.tokens - clock.first_tokens;
  const double decode_ms = ms_between(clock.first, clock.last);
  if (clock.chunks < 2 || decode_tokens == 0 || decode_ms <= 0) {
    return failed_precondition_error(fmt::format(
        "run {}: the plugin streamed {} tokens in {} chunks ({}), nothing to time the decode by: "
        "raise --new-tokens, or a longer --prompt-tokens for a plugin that stops early",
        run, clock.tokens, clock.chunks, host::finish_reason_name(result->finish_reason)));
  }
  return RunTiming{.prefill_ms = ms_between(start, clock.first),
                   .decode_tokens_per_s = static_cast<double>(decode_tokens) / (decode_ms / 1000.0),
                   .total_ms = ms_between(start, end),
                   .prompt_tokens = result->prompt_tokens,
                   .completion_tokens = result->completion_tokens};
}

Status run_bench(const BenchCommand& c) {
  PIO_ASSIGN_OR_RETURN(RunningPlugin running, RunningPlugin::start(c.host, c.plugin));
  const std::string prompt = prompt_of_words(c.prompt_words);
  host::GenerateOptions options;
  options.max_tokens = c.new_tokens;
  options.temperature = 0.0f;  // greedy: every run does the same work

  std::vector<RunTiming> timings;
  const Clock::time_point started = Clock::now();
  for (uint32_t run = 1; run <= c.runs; ++run) {
    PIO_ASSIGN_OR_RETURN(RunTiming t, time_one_run(running, prompt, options, run));
    std::fprintf(stderr,
                 "run %u/%u: prefill %.1f ms (%u prompt tokens), decode %.1f tokens/s "
                 "(%u tokens), %.1f ms\n",
                 run, c.runs, t.prefill_ms, t.prompt_tokens, t.decode_tokens_per_s,
                 t.completion_tokens, t.total_ms);
    timings.push_back(t);
  }
  const double wall_s = ms_between(started, Clock::now()) / 1000.0;

  std::vector<double> prefill, decode, total;
  uint64_t generated = 0;
  for (const RunTiming& t : timings) {
    prefill.push_back(t.prefill_ms);
    decode.push_back(t.decode_tokens_per_s);
    total.push_back(t.total_ms);
    generated += t.completion_tokens;
  }
  if (c.json) {
    ordered_json runs = ordered_json::array();
    for (const RunTiming& t : timings) {
      runs.push_back({{"prefill_ms", t.prefill_ms},
                      {"decode_tokens_per_s", t.decode_tokens_per_s},
                      {"total_ms", t.total_ms},
                      {"completion_tokens", t.completion_tokens}});
    }
    std::fputs(json_line({{"plugin", running.name()},
                          {"prompt_words", c.prompt_words},
                          {"prompt_tokens", timings.front().prompt_tokens},
                          {"new_tokens", c.new_tokens},
                          {"runs", runs},
                          {"median_prefill_ms", median(prefill)},
                          {"median_decode_tokens_per_s", median(decode)},
                          {"median_total_ms", median(total)},
                          {"total_s", wall_s},
                          {"total_tokens", generated}})
                   .c_str(),
               stdout);
  } else {
    fmt::print("{}: {} runs, prompt {} tokens, up to {} new tokens, greedy\n", running.name(),
               c.runs, timings.front().prompt_tokens, c.new_tokens);
    fmt::print("prefill  {:.1f} ms (median time to first token)\n", median(prefill));
    fmt::print("decode   {:.1f} tokens/s (median)\n", median(decode));
    fmt::print("total    {:.1f} ms a run (median); {} tokens in {:.2f} s\n", median(total),
               generated, wall_s);
  }
  (void)std::fflush(stdout);
  return ok_status();
}

}  // namespace

void add_bench_command(CLI::App& app, std::vector<Command>* commands) {
  CLI::App* sub = app.add_subcommand(
      "bench", "Quick prefill and decode speed check through the sandboxed worker");
  sub->footer(
      "Runs --runs greedy generations of --new-tokens after a prompt of about --prompt-tokens "
      "words and prints the median time to the first streamed token (prefill, IPC included), the "
      "median decode tokens/s of the rest, and the total. An operator's quick check, not a "
      "benchmark: the real benchmarks are scripts/bench.sh.");
  auto c = std::make_shared<BenchCommand>();
  add_host_options(sub, &c->host);
  add_plugin_options(sub, &c->plugin);
  sub->add_option("--prompt-tokens", c->prompt_words,
                  "Prompt length, in words of about one token each (the plugin's exact count "
                  "is printed)")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str()
      ->group("Bench");
  sub->add_option("--new-tokens", c->new_tokens, "Tokens to generate a run (at least 2)")
      ->check(CLI::Range(2u, 1u << 20))
      ->capture_default_str()
      ->group("Bench");
  sub->add_option("--runs", c->runs, "Generations to time")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str()
      ->group("Bench");
  sub->add_flag("--json", c->json, "Print one JSON line instead of the summary");
  commands->push_back({sub, [c] { return run_bench(*c); }});
}

}  // namespace pio::cli
