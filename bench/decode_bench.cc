// bench_decode: how close batch-1 decode comes to the memory-bandwidth bound on this machine.
//
// Decode reads every weight once per token, so its ceiling is (read bandwidth) / (weight bytes
// per token). Both are measured in this run: the read bandwidth as a sum over a 1 GiB array on
// the same 2 threads the model uses, then decode (128 new tokens after a 128-token prompt) and
// prefill (a 512-token prompt) of a Qwen3-0.6B-shaped bf16 checkpoint with random weights. The
// summary reports decode / bound (target >= 0.6) and the GEMV kernel's gain over libtorch's own
// bf16 matmul on the same model. Then the same decode through the qwen3_0_6b plugin, called
// in-process and through pio::Host in a low-trust sandboxed worker, run in alternation (target:
// sandboxed / in-process >= 0.98).

#include <benchmark/benchmark.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pio/host/host.h"
#include "pio/kernels/gemv_bf16.h"
#include "pio/kernels/thread_pool.h"
#include "pio/plugin_sdk/in_process_plugin.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/mkmodel.h"
#include "pio/runtime/qwen3_model.h"
#include "pio/runtime/sampler.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using pio::runtime::Qwen3Model;

constexpr int kThreads = 2;
constexpr size_t kBandwidthBytes = size_t{1} << 30;

std::map<std::string, double>& figures() {
  static std::map<std::string, double> f;
  return f;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_decode: %s\n", what.c_str());
  std::exit(1);
}

// ---- read bandwidth ----

#if defined(__x86_64__)
__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a[8];
  for (auto& x : a) x = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 8; ++k) a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p + i + 8 * k));
  }
  for (int k = 1; k < 8; ++k) a[0] = _mm256_add_ps(a[0], a[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, a[0]);
  float s = 0;
  for (float x : lanes) s += x;
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

float sum_floats(const float* p, size_t n) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return sum_avx2(p, n);
#endif
  float s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

// A sum over 1 GiB on kThreads threads (each reads its half), as a weight stream would. The
// buffer is made once (huge pages, pre-faulted) and kept for the measurements interleaved with
// decode below.
double measure_read_gbps() {
  static float* data = [] {
    void* mem =
        mmap(nullptr, kBandwidthBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) die("mmap of the bandwidth buffer failed");
    madvise(mem, kBandwidthBytes, MADV_HUGEPAGE);
    auto* floats = static_cast<float*>(mem);
    std::fill(floats, floats + kBandwidthBytes / sizeof(float), 1.0f);
    return floats;
  }();
  static pio::kernels::ThreadPool pool(kThreads);
  const size_t n = kBandwidthBytes / sizeof(float);
  std::vector<float> partial(kThreads, 0.0f);
  const auto start = Clock::now();
  pool.parallel_for(kThreads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      const size_t lo = n * static_cast<size_t>(part) / kThreads;
      const size_t hi = n * static_cast<size_t>(part + 1) / kThreads;
      partial[static_cast<size_t>(part)] = sum_floats(data + lo, hi - lo);
    }
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  benchmark::DoNotOptimize(partial.data());
  return static_cast<double>(kBandwidthBytes) / seconds / 1e9;
}

void BM_ReadBandwidth(benchmark::State& state) {
  std::vector<double> gbps;
  for (auto _ : state) {
    const double g = measure_read_gbps();
    state.SetIterationTime(static_cast<double>(kBandwidthBytes) / 1e9 / g);
    gbps.push_back(g);
  }
  figures()["read_gbps"] = median(gbps);
  state.counters["GB_per_s"] = median(gbps);
}

// ---- the model ----

fs::path checkpoint_dir() {
  const char* env = std::getenv("PIO_BENCH_DATA_DIR");
  return fs::path(env != nullptr ? env : PIO_BENCH_DATA_DIR) / "qwen3-0.6b-bf16";
}

// The Qwen3-0.6B-shaped checkpoint, written on first use (config.json is written last, so a
// half-written one is redone).
void ensure_checkpoint(const fs::path& dir) {
  if (fs::exists(dir / "config.json")) return;
  auto options = pio::runtime::mkmodel_preset("qwen3-0.6b");
  if (!options.ok()) die(options.status().to_string());
  options->out_dir = dir;
  options->seed = 1;
  std::fprintf(stderr, "bench_decode: writing a random Qwen3-0.6B checkpoint to %s\n",
               dir.string().c_str());
  const auto written = pio::runtime::write_random_checkpoint(*options);
  if (!written.ok()) die(written.status().to_string());
}

// The plugin needs the tokenizer beside the weights (scripts/fetch-test-data.sh fetches it).
void ensure_tokenizer(const fs::path& dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    if (fs::exists(dir / f)) continue;
    const fs::path from = fs::path(PIO_BENCH_TOKENIZER_DIR) / f;
    std::error_code ec;
    fs::copy_file(from, dir / f, ec);
    if (ec)
      die("cannot copy " + from.string() + ": " + ec.message() +
          " (run scripts/fetch-test-data.sh)");
    chmod((dir / f).c_str(), 0644);
  }
}

Qwen3Model& model(bool gemv_kernel) {
  static std::map<bool, std::unique_ptr<Qwen3Model>> models;
  auto& slot = models[gemv_kernel];
  if (!slot) {
    ensure_checkpoint(checkpoint_dir());
    auto loaded =
        Qwen3Model::load(checkpoint_dir(), {.threads = kThreads, .gemv_kernel = gemv_kernel});
    if (!loaded.ok()) die(loaded.status().to_string());
    slot = std::move(*loaded);
    // Fault the mapped weights in before anything is timed.
    auto cache = slot->new_cache(8);
    const std::vector<int32_t> warm = {1, 2, 3, 4};
    if (!cache.ok() || !slot->forward(warm, 0, *cache).ok()) die("warm-up forward failed");
  }
  return *slot;
}

std::vector<int32_t> prompt_of(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids;
  uint64_t x = 12345;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ids.push_back(static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab)));
  }
  return ids;
}

// Greedy decode of `new_tokens` after a 128-token prompt; the time covers the decode steps only
// (forward of the previous token + sampling), not the prefill.
void run_decode(benchmark::State& state, bool gemv_kernel, const std::string& name) {
  Qwen3Model& m = model(gemv_kernel);
  const int64_t new_tokens = state.range(0);
  const std::vector<int32_t> prompt = prompt_of(128, m.vocab_size());
  pio::runtime::SamplingParams greedy;
  greedy.temperature = 0.0;
  std::vector<double> rates, ratios;
  const double bytes = static_cast<double>(m.weight_bytes_per_token());
  for (auto _ : state) {
    auto cache = m.new_cache(128 + new_tokens);
    if (!cache.ok()) die(cache.status().to_string());
    auto logits = m.forward(prompt, 0, *cache);
    if (!logits.ok()) die(logits.status().to_string());
    pio::runtime::Sampler sampler(greedy);
    std::vector<int32_t> generated;
    // The machine is shared and its bandwidth drifts, so a bandwidth pass (untimed for decode) is
    // interleaved every 16 tokens, and decode is also reported against the bound of those.
    std::vector<double> gbps;
    double seconds = 0;
    auto start = Clock::now();
    for (int64_t i = 0; i < new_tokens; ++i) {
      generated.push_back(sampler.sample(*logits, prompt, generated).id);
      if (i + 1 == new_tokens) break;
      logits = m.forward({&generated.back(), 1}, cache->length(), *cache);
      if (!logits.ok()) die(logits.status().to_string());
      if (i % 16 == 15) {
        seconds += std::chrono::duration<double>(Clock::now() - start).count();
        gbps.push_back(measure_read_gbps());
        start = Clock::now();
      }
    }
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    rates.push_back(static_cast<double>(new_tokens - 1) / seconds);
    if (!gbps.empty()) ratios.push_back(rates.back() / (median(gbps) * 1e9 / bytes));
  }
  figures()[name] = median(rates);
  figures()[name + ".vs_interleaved_bound"] = median(ratios);
  state.counters["vs_interleaved_bound"] = median(ratios);
  state.counters["tokens_per_s"] = median(rates);
}

void BM_Decode(benchmark::State& state) { run_decode(state, true, "decode_tok_s"); }
void BM_DecodeLibtorchMatmul(benchmark::State& state) {
  run_decode(state, false, "decode_libtorch_tok_s");
}

// The GEMV kernel alone over every matrix a decoded token reads (the checkpoint's mapped weights,
// grouped as decode groups them), without the rest of the forward pass: how much of the read
// bandwidth the kernel gets, and so how much of decode's gap to the bound is the kernel's.
void BM_GemvAllWeights(benchmark::State& state) {
  model(true);  // writes the checkpoint if needed and faults its pages in
  auto checkpoint = pio::runtime::Checkpoint::open(checkpoint_dir());
  if (!checkpoint.ok()) die(checkpoint.status().to_string());
  const auto config = pio::runtime::load_qwen3_config(checkpoint_dir());
  if (!config.ok()) die(config.status().to_string());
  auto weight = [&](const std::string& name) {
    return static_cast<const uint16_t*>(static_cast<const void*>(checkpoint->find(name)->data));
  };
  std::vector<float> out(static_cast<size_t>(config->vocab_size + 4 * config->intermediate_size));
  std::vector<uint16_t> x(static_cast<size_t>(4 * config->intermediate_size), 0x3F80);  // 1.0
  struct Group {
    std::vector<pio::kernels::GemvMatrix> matrices;
    int64_t cols;
  };
  std::vector<Group> groups;
  const int64_t hidden = config->hidden_size, inter = config->intermediate_size;
  const int64_t q_rows = config->num_attention_heads * config->head_dim;
  const int64_t kv_rows = config->num_key_value_heads * config->head_dim;
  double bytes = 0;
  for (int64_t i = 0; i < config->num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    float* o = out.data();
    groups.push_back({{{weight(p + "self_attn.q_proj.weight"), q_rows, o},
                       {weight(p + "self_attn.k_proj.weight"), kv_rows, o + q_rows},
                       {weight(p + "self_attn.v_proj.weight"), kv_rows, o + q_rows + kv_rows}},
                      hidden});
    groups.push_back({{{weight(p + "self_attn.o_proj.weight"), hidden, o}}, q_rows});
    groups.push_back({{{weight(p + "mlp.gate_proj.weight"), inter, o},
                       {weight(p + "mlp.up_proj.weight"), inter, o + inter}},
                      hidden});
    groups.push_back({{{weight(p + "mlp.down_proj.weight"), hidden, o}}, inter});
    bytes += 2.0 * static_cast<double>(hidden * (q_rows + 2 * kv_rows) + q_rows * hidden +
                                       3 * hidden * inter);
  }
  groups.push_back(
      {{{weight("model.embed_tokens.weight"), config->vocab_size, out.data()}}, hidden});
  bytes += 2.0 * static_cast<double>(config->vocab_size * hidden);
  pio::kernels::ThreadPool pool(kThreads);
  std::vector<double> gbps;
  for (auto _ : state) {
    const auto start = Clock::now();
    for (const Group& g : groups) pio::kernels::gemv_bf16(g.matrices, g.cols, x.data(), &pool);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    benchmark::DoNotOptimize(out.data());
    state.SetIterationTime(seconds);
    gbps.push_back(bytes / seconds / 1e9);
  }
  figures()["gemv_gbps"] = median(gbps);
  state.counters["GB_per_s"] = median(gbps);
}

void BM_Prefill(benchmark::State& state) {
  Qwen3Model& m = model(true);
  const int64_t tokens = state.range(0);
  const std::vector<int32_t> prompt = prompt_of(tokens, m.vocab_size());
  std::vector<double> rates;
  for (auto _ : state) {
    auto cache = m.new_cache(tokens);
    if (!cache.ok()) die(cache.status().to_string());
    const auto start = Clock::now();
    const auto logits = m.forward(prompt, 0, *cache);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!logits.ok()) die(logits.status().to_string());
    state.SetIterationTime(seconds);
    rates.push_back(static_cast<double>(tokens) / seconds);
  }
  figures()["prefill_tok_s"] = median(rates);
  state.counters["tokens_per_s"] = median(rates);
}

// ---- the plugin: in-process vs sandboxed ----

// A prompt of about 128 tokens (one per repeated word).
std::string plugin_prompt() {
  std::string text = "Once";
  for (int i = 0; i < 127; ++i) text += " upon";
  return text;
}

// Decode rate from the arrival times of the tokens: the prefill (before the first) is left out.
double rate_of(const std::vector<Clock::time_point>& stamps) {
  if (stamps.size() < 2) return 0.0;
  return static_cast<double>(stamps.size() - 1) /
         std::chrono::duration<double>(stamps.back() - stamps.front()).count();
}

struct PluginRuns {
  fs::path root;  // the plugin copied where the worker's identity can read it
  std::unique_ptr<pio::sdk::InProcessPlugin> direct;
  std::unique_ptr<pio::Host> host;

  static PluginRuns& get() {
    static PluginRuns runs = start();
    return runs;
  }
  static PluginRuns start() {
    PluginRuns r;
    ensure_checkpoint(checkpoint_dir());
    ensure_tokenizer(checkpoint_dir());
    char tmpl[] = "/tmp/pio-bench-decode-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) die("mkdtemp");
    r.root = tmpl;
    const fs::path plugin = r.root / "plugins" / "qwen3_0_6b";
    fs::create_directories(plugin);
    for (const char* f : {"libqwen3_0_6b.so", "plugin_manifest.json"}) {
      fs::copy_file(fs::path(PIO_BENCH_QWEN3_DIR) / f, plugin / f);
    }
    for (const auto& e : fs::recursive_directory_iterator(r.root)) chmod(e.path().c_str(), 0755);
    chmod(r.root.c_str(), 0755);

    auto direct = pio::sdk::InProcessPlugin::load(plugin / "libqwen3_0_6b.so", R"({"threads": 2})");
    if (!direct.ok()) die(direct.status().to_string());
    r.direct = std::move(*direct);
    pio::Status loaded = r.direct->load_model(checkpoint_dir());
    if (!loaded.ok()) die(loaded.to_string());

    pio::host::HostConfig config = pio::host::default_host_config();
    config.policy_dir = PIO_BENCH_POLICY_DIR;
    config.worker_path = PIO_BENCH_WORKER_PATH;
    config.cgroup_base = "/";
    config.plugin_dirs = {r.root / "plugins"};
    pio::host::PluginSettings settings = config.defaults;  // low trust
    settings.model_roots = {checkpoint_dir()};
    // The in-process run has the whole machine: the worker gets its 2 cores too.
    settings.limits.cpu_percent = 200;
    settings.limits.memory_mb = 4096;
    settings.limits.pids = 128;
    settings.config_json = R"({"threads": 2})";
    settings.start_timeout = std::chrono::milliseconds(60'000);
    settings.request_deadline = std::chrono::milliseconds(120'000);
    config.plugins["qwen3_0_6b"] = settings;
    auto host = pio::Host::create(config);
    if (!host.ok()) die(host.status().to_string());
    r.host = std::move(*host);
    r.host->discover_and_load_plugins();
    pio::Status active =
        r.host->activate_plugin("qwen3_0_6b", {.model_path = checkpoint_dir().string()});
    if (!active.ok()) die(active.to_string());
    return r;
  }

  double in_process(uint32_t new_tokens, size_t* tokens) {
    std::vector<Clock::time_point> stamps;
    auto done = direct->generate(plugin_prompt(), {.max_tokens = new_tokens, .temperature = 0.0f},
                                 [&](std::span<const int32_t>, std::string_view) {
                                   stamps.push_back(Clock::now());
                                   return true;
                                 });
    if (!done.ok()) die(done.status().to_string());
    *tokens = stamps.size();
    return rate_of(stamps);
  }

  double sandboxed(uint32_t new_tokens, size_t* tokens) {
    std::vector<Clock::time_point> stamps;
    auto done = host->generate_stream("qwen3_0_6b", plugin_prompt(),
                                      {.max_tokens = new_tokens, .temperature = 0.0f},
                                      [&](const pio::host::TokenChunk&) {
                                        stamps.push_back(Clock::now());
                                        return true;
                                      });
    if (!done.ok()) die(done.status().to_string());
    *tokens = stamps.size();
    return rate_of(stamps);
  }
};

// Pairs of runs, in-process then sandboxed, so that both see the same state of the machine; the
// figure is the median of the pairs' ratios.
void BM_DecodeThroughWorker(benchmark::State& state) {
  PluginRuns& runs = PluginRuns::get();
  const auto new_tokens = static_cast<uint32_t>(state.range(0));
  size_t warm = 0;
  runs.in_process(4, &warm);
  runs.sandboxed(4, &warm);
  std::vector<double> direct, sandboxed, ratios;
  size_t tokens_direct = 0, tokens_sandboxed = 0;
  for (auto _ : state) {
    const auto start = Clock::now();
    direct.push_back(runs.in_process(new_tokens, &tokens_direct));
    sandboxed.push_back(runs.sandboxed(new_tokens, &tokens_sandboxed));
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - start).count());
    ratios.push_back(sandboxed.back() / direct.back());
  }
  if (tokens_direct != tokens_sandboxed) {
    die("the sandboxed and in-process runs generated different numbers of tokens");
  }
  figures()["plugin_in_process_tok_s"] = median(direct);
  figures()["plugin_sandboxed_tok_s"] = median(sandboxed);
  figures()["sandboxed_vs_in_process"] = median(ratios);
  figures()["plugin_tokens"] = static_cast<double>(tokens_direct);
  state.counters["in_process_tok_s"] = median(direct);
  state.counters["sandboxed_tok_s"] = median(sandboxed);
  state.counters["sandboxed_vs_in_process"] = median(ratios);
}

void BM_Summary(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(figures().size());
  auto& f = figures();
  const double bytes = static_cast<double>(model(true).weight_bytes_per_token());
  const double bound = f["read_gbps"] * 1e9 / bytes;
  const double ratio = bound > 0 ? f["decode_tok_s"] / bound : 0.0;
  const double gain =
      f["decode_libtorch_tok_s"] > 0 ? f["decode_tok_s"] / f["decode_libtorch_tok_s"] : 0.0;
  state.counters["read_GB_per_s"] = f["read_gbps"];
  state.counters["weight_MB_per_token"] = bytes / 1e6;
  state.counters["bound_tok_s"] = bound;
  state.counters["decode_tok_s"] = f["decode_tok_s"];
  state.counters["decode_vs_bound"] = ratio;
  state.counters["decode_vs_interleaved_bound"] = f["decode_tok_s.vs_interleaved_bound"];
  state.counters["kernel_vs_libtorch"] = gain;
  state.counters["prefill_tok_s"] = f["prefill_tok_s"];
  state.counters["plugin_in_process_tok_s"] = f["plugin_in_process_tok_s"];
  state.counters["plugin_sandboxed_tok_s"] = f["plugin_sandboxed_tok_s"];
  state.counters["sandboxed_vs_in_process"] = f["sandboxed_vs_in_process"];
  state.counters["gemv_vs_read_bandwidth"] =
      f["read_gbps"] > 0 ? f["gemv_gbps"] / f["read_gbps"] : 0;
  std::printf(
      "\ndecode summary (Qwen3-0.6B shape, bf16, %d threads, same run):\n"
      "  read bandwidth        %6.1f GB/s   weights per token %.0f MB   bound %.1f tok/s\n"
      "  decode (batch 1)      %6.1f tok/s  = %.2f x bound (target >= 0.6)\n"
      "                                     = %.2f x the bound of bandwidth passes interleaved\n"
      "                                       with the decode (the machine is shared)\n"
      "  decode, libtorch GEMV %6.1f tok/s  (the kernel is %.2f x faster)\n"
      "  GEMV kernel alone     %6.1f GB/s   = %.2f x read bandwidth (all weights, no forward "
      "pass)\n"
      "  prefill (512 tokens)  %6.1f tok/s\n"
      "  plugin qwen3_0_6b     %6.1f tok/s in-process, %.1f tok/s in a low-trust worker:\n"
      "                        sandboxed / in-process = %.3f (target >= 0.98; %.0f tokens, "
      "median of alternating pairs)\n",
      kThreads, f["read_gbps"], bytes / 1e6, bound, f["decode_tok_s"], ratio,
      f["decode_tok_s.vs_interleaved_bound"], f["decode_libtorch_tok_s"], gain, f["gemv_gbps"],
      f["read_gbps"] > 0 ? f["gemv_gbps"] / f["read_gbps"] : 0.0, f["prefill_tok_s"],
      f["plugin_in_process_tok_s"], f["plugin_sandboxed_tok_s"], f["sandboxed_vs_in_process"],
      f["plugin_tokens"]);
}

BENCHMARK(BM_ReadBandwidth)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(7);
BENCHMARK(BM_Decode)->UseManualTime()->Unit(benchmark::kMillisecond)->Arg(128)->Iterations(3);
BENCHMARK(BM_DecodeLibtorchMatmul)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Arg(32)
    ->Iterations(3);
BENCHMARK(BM_GemvAllWeights)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(BM_Prefill)->UseManualTime()->Unit(benchmark::kMillisecond)->Arg(512)->Iterations(3);
BENCHMARK(BM_DecodeThroughWorker)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Arg(128)
    ->Iterations(3);
BENCHMARK(BM_Summary)->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
