// pio_soak SECONDS: `pio serve` under mixed traffic for SECONDS, with everything a hostile world
// does to it at once, then the books balanced. Run by scripts/soak.sh; not part of ctest (it runs
// for tens of minutes).
//
// The server runs as its own process with a host config of three tenants:
//   steady  streams chats from echo (exact text expected) and completions from hostile plugins:
//           crash_mid_stream (its worker dies after three tokens), memory_bomb (it runs into its
//           memory limit), slow_drip;
//   flood   floods echo from many clients at once, far past its max_concurrent (429s expected);
//   admin   the admin key: /metrics and /admin/plugins are read throughout.
// A killer SIGKILLs a random worker of the server every few seconds.
//
// What must hold at the end: no request lost (each one got its full answer or one clean error:
// an OpenAI error body, or an error event followed by data: [DONE]), no echo stream with wrong
// text, /healthz answered throughout, and the server's fds, threads, RSS and cgroups back to
// (about) where they were after warm-up. Exit status 0 when all of it holds; the figures are
// printed as one JSON line at the end.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "http_exchange.h"
#include "pio/host/sha256.h"

namespace {

namespace fs = std::filesystem;
using pio::server::testing::classify;
using pio::server::testing::exchange;
using pio::server::testing::get;
using pio::server::testing::Outcome;
using pio::server::testing::post;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSteadyKey[] = "sk-soak-steady";
constexpr char kFloodKey[] = "sk-soak-flood";
constexpr char kAdminKey[] = "sk-soak-admin";
constexpr const char* kHostile[] = {"hostile_crash_mid_stream", "hostile_memory_bomb",
                                    "hostile_slow_drip"};
constexpr auto kRequestTimeout = seconds(120);

// The config holds keys' SHA-256 only; the host's own hash of a file gives it.
std::string sha256_hex(const fs::path& scratch, const std::string& text) {
  const fs::path file = scratch / "key";
  std::ofstream(file) << text;
  auto hex = pio::host::sha256_file_hex(file);
  fs::remove(file);
  return hex.ok() ? *hex : std::string();
}

void install_plugin(const fs::path& built_dir, const std::string& name, const fs::path& plugins) {
  const fs::path dir = plugins / name;
  fs::create_directories(dir);
  fs::copy_file(built_dir / "plugin_manifest.json", dir / "plugin_manifest.json",
                fs::copy_options::overwrite_existing);
  fs::copy_file(built_dir / ("lib" + name + ".so"), dir / ("lib" + name + ".so"),
                fs::copy_options::overwrite_existing);
}

// What /proc says about one process.
struct ProcessFigures {
  size_t fds = 0;
  size_t threads = 0;
  size_t rss_kib = 0;
  size_t children = 0;
};

ProcessFigures figures_of(pid_t pid) {
  ProcessFigures f;
  const fs::path proc = fs::path("/proc") / std::to_string(pid);
  std::error_code ec;
  for (auto it = fs::directory_iterator(proc / "fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++f.fds;
  }
  for (auto it = fs::directory_iterator(proc / "task", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++f.threads;
    std::ifstream children(it->path() / "children");
    std::string child;
    while (children >> child) ++f.children;
  }
  std::ifstream status(proc / "status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) f.rss_kib = std::strtoul(line.c_str() + 6, nullptr, 10);
  }
  return f;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  const fs::path tasks = fs::path("/proc") / std::to_string(pid) / "task";
  for (auto it = fs::directory_iterator(tasks, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::ifstream children(it->path() / "children");
    pid_t child;
    while (children >> child) out.push_back(child);
  }
  return out;
}

// Cgroup folders whose name carries the soak's instance name, in every mounted hierarchy.
size_t count_cgroups(const std::string& instance) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) &&
        it->path().filename().string().find(instance) != std::string::npos) {
      ++n;
      it.disable_recursion_pending();
    }
  }
  return n;
}

struct Tally {
  std::mutex mu;
  std::map<std::string, int> counts;  // "<kind> <outcome>" -> requests
  std::vector<std::string> lost;      // the first few requests that were not answered cleanly
  int lost_total = 0;

  void count(const std::string& what) {
    std::lock_guard lock(mu);
    ++counts[what];
  }
  void lose(std::string what) {
    std::lock_guard lock(mu);
    ++lost_total;
    if (lost.size() < 20) lost.push_back(std::move(what));
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int run_seconds = argc > 1 ? std::atoi(argv[1]) : 1800;
  if (run_seconds <= 0) {
    std::fprintf(stderr, "usage: pio_soak SECONDS\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);

  char tmpl[] = "/tmp/pio-soak-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 2;
  const fs::path root = tmpl;
  const fs::path plugins = root / "plugins";
  fs::create_directories(root / "models" / "echo");
  std::ofstream(root / "models" / "echo" / "config.json") << "{}";
  install_plugin(PIO_SOAK_ECHO_DIR, "echo", plugins);
  for (const char* name : kHostile) {
    install_plugin(fs::path(PIO_SOAK_HOSTILE_DIR) / name, name, plugins);
  }
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    ::chmod(entry.path().c_str(), 0755);
  }
  ::chmod(root.c_str(), 0755);

  const std::string instance = "pio-soak-" + std::to_string(::getpid());
  const Json restart = {{"max_crashes", 100000},
                        {"window_ms", 60000},
                        {"backoff_initial_ms", 10},
                        {"backoff_max_ms", 200}};
  Json config = {
      {"policy_dir", PIO_SOAK_POLICY_DIR},
      {"worker_path", PIO_SOAK_WORKER_PATH},
      {"instance_name", instance},
      {"cgroup_base", "/"},
      {"plugin_dirs", {plugins.string()}},
      {"defaults",
       {{"trust_level", "low"},
        {"request_deadline_ms", 60000},
        {"limits", {{"memory_mb", 256}, {"pids", 32}}},
        {"restart", restart}}},
      {"plugins",
       {{"echo",
         {{"model_roots", {(root / "models").string()}}, {"config", {{"token_delay_ms", 2}}}}}}},
      {"server",
       {{"tenants",
         {{"steady", {{"api_keys_sha256", {sha256_hex(root, kSteadyKey)}}, {"models", {"*"}}}},
          {"flood",
           {{"api_keys_sha256", {sha256_hex(root, kFloodKey)}},
            {"models", {"echo"}},
            {"max_concurrent", 4}}}}},
        {"admin_keys_sha256", {sha256_hex(root, kAdminKey)}}}}};
  for (const char* name : kHostile) {
    config["plugins"][name] = {{"model_roots", {(root / "models").string()}}};
  }
  const fs::path config_path = root / "host.json";
  std::ofstream(config_path) << config.dump(2);

  // The server, its stdout read for the port it took.
  int out_pipe[2];
  if (::pipe(out_pipe) != 0) return 2;
  const pid_t server = ::fork();
  if (server == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    const std::string model = (root / "models" / "echo").string();
    const std::string config_arg = config_path.string();
    ::execl(PIO_SOAK_PIO_PATH, "pio", "serve", "--plugin", "echo", "--model", model.c_str(),
            "--port", "0", "--config", config_arg.c_str(), "--drain-seconds", "5",
            static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(out_pipe[1]);
  uint16_t port = 0;
  {
    FILE* out = ::fdopen(out_pipe[0], "r");
    char line[512];
    while (port == 0 && std::fgets(line, sizeof(line), out) != nullptr) {
      const char* at = std::strstr(line, "http://127.0.0.1:");
      if (at != nullptr) port = static_cast<uint16_t>(std::atoi(at + 17));
    }
    // Keep reading (and dropping) what the server prints, so it never blocks on a full pipe.
    std::thread([out] {
      char sink[512];
      while (std::fgets(sink, sizeof(sink), out) != nullptr) {
      }
      std::fclose(out);
    }).detach();
  }
  if (port == 0) {
    std::fprintf(stderr, "pio_soak: pio serve did not say which port it listens on\n");
    ::kill(server, SIGKILL);
    return 1;
  }
  std::printf("pio_soak: pio serve (pid %d) on port %u, %d s, config %s\n", server, port,
              run_seconds, config_path.c_str());

  // The hostile plugins come in through the admin API, as an operator would load them.
  for (const char* name : kHostile) {
    const std::string answer = exchange(
        port, post(std::string("/admin/plugins/") + name + "/load", "{}", kAdminKey), seconds(60));
    if (answer.rfind("HTTP/1.1 200", 0) != 0) {
      std::fprintf(stderr, "pio_soak: loading %s failed: %s\n", name, answer.c_str());
      ::kill(server, SIGKILL);
      return 1;
    }
  }

  Tally tally;
  auto echo_request = [](int client, int request, bool stream, const char* key) {
    char head[64];
    std::snprintf(head, sizeof(head), "client %02d request %05d ", client, request);
    std::string text = head;
    while (text.size() < 80) text += static_cast<char>('a' + text.size() % 26);
    return std::make_pair(text, post("/v1/chat/completions",
                                     Json({{"model", "echo"},
                                           {"messages", {{{"role", "user"}, {"content", text}}}},
                                           {"max_tokens", 1000},
                                           {"stream", stream}})
                                         .dump(),
                                     key));
  };
  auto judge_echo = [&](const std::string& who, const std::string& text, const Outcome& got) {
    if (got.kind == Outcome::kCompleted && got.text == text) return tally.count("echo completed");
    if (got.kind == Outcome::kCompleted) {
      return tally.lose(who + ": streamed \"" + got.text + "\" instead of \"" + text + "\"");
    }
    if (got.kind == Outcome::kError) return tally.count("echo error " + got.error_code);
    tally.lose(who + ": " + got.why);
  };

  // Warm-up: every plugin answers once, so the baseline has every worker started.
  for (int i = 0; i < 3; ++i) {
    auto [text, request] = echo_request(99, i, true, kSteadyKey);
    judge_echo("warm-up", text, classify(exchange(port, request, kRequestTimeout), true, true));
    auto [flood_text, flood_request] = echo_request(98, i, true, kFloodKey);
    judge_echo("warm-up", flood_text,
               classify(exchange(port, flood_request, kRequestTimeout), true, true));
  }
  std::this_thread::sleep_for(seconds(2));
  const ProcessFigures before = figures_of(server);
  const size_t cgroups_before = count_cgroups(instance);

  const auto begin = Clock::now();
  const auto end = begin + seconds(run_seconds);
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  auto wait_or_stop = [&](Clock::duration d) {
    std::unique_lock lock(stop_mu);
    return stop_cv.wait_for(lock, d, [&] { return stopping; });
  };

  std::vector<std::thread> threads;
  // Steady echo streams (and some whole answers).
  for (int c = 0; c < 6; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; Clock::now() < end; ++r) {
        const bool stream = r % 4 != 3;
        auto [text, request] = echo_request(c, r, stream, kSteadyKey);
        judge_echo("steady echo " + std::to_string(c) + "/" + std::to_string(r), text,
                   classify(exchange(port, request, kRequestTimeout), true, stream));
      }
    });
  }
  // The flood: more clients than its max_concurrent, no pause between requests.
  for (int c = 0; c < 12; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0; Clock::now() < end; ++r) {
        auto [text, request] = echo_request(20 + c, r, true, kFloodKey);
        const Outcome got = classify(exchange(port, request, kRequestTimeout), true, true);
        if (got.kind == Outcome::kError && got.status == 429) {
          tally.count("flood 429");
          if (wait_or_stop(milliseconds(20))) return;
          continue;
        }
        judge_echo("flood " + std::to_string(c) + "/" + std::to_string(r), text, got);
      }
    });
  }
  // Hostile completions: crashes, memory bombs and slow drips, a client each.
  for (const char* name : kHostile) {
    threads.emplace_back([&, name] {
      for (int r = 0; Clock::now() < end; ++r) {
        const std::string request = post(
            "/v1/completions",
            Json({{"model", name}, {"prompt", "abcdefgh"}, {"max_tokens", 16}, {"stream", true}})
                .dump(),
            kSteadyKey);
        const Outcome got = classify(exchange(port, request, kRequestTimeout), false, true);
        const std::string kind = std::string(name) + " ";
        if (got.kind == Outcome::kCompleted)
          tally.count(kind + "completed");
        else if (got.kind == Outcome::kError)
          tally.count(kind + "error " + got.error_code);
        else
          tally.lose(kind + std::to_string(r) + ": " + got.why);
      }
    });
  }
  // The operator's view, read throughout.
  std::atomic<int64_t> longest_health_gap_ms{0};
  threads.emplace_back([&] {
    auto last = Clock::now();
    while (!wait_or_stop(milliseconds(250))) {
      const std::string health = exchange(port, get("/healthz"), seconds(2));
      const auto now = Clock::now();
      const int64_t gap = std::chrono::duration_cast<milliseconds>(now - last).count();
      if (gap > longest_health_gap_ms) longest_health_gap_ms = gap;
      if (health.rfind("HTTP/1.1 200", 0) == 0) last = now;
      for (const char* target : {"/metrics", "/admin/plugins"}) {
        const std::string got = exchange(port, get(target, kAdminKey), seconds(10));
        if (got.rfind("HTTP/1.1 200", 0) == 0)
          tally.count(std::string("admin ") + target);
        else
          tally.lose(std::string("admin ") + target + ": " + got.substr(0, 200));
      }
    }
  });
  // The killer: a random worker of the server, every 2-6 s.
  std::atomic<int> kills{0};
  threads.emplace_back([&] {
    std::mt19937 rng(12345);
    while (!wait_or_stop(milliseconds(2000 + rng() % 4000))) {
      const std::vector<pid_t> workers = children_of(server);
      if (workers.empty()) continue;
      if (::kill(workers[rng() % workers.size()], SIGKILL) == 0) ++kills;
    }
  });

  // Progress, once a minute.
  while (!wait_or_stop(seconds(1))) {
    if (Clock::now() >= end) break;
    const auto elapsed = std::chrono::duration_cast<seconds>(Clock::now() - begin).count();
    if (elapsed % 60 == 0) {
      std::lock_guard lock(tally.mu);
      std::printf("pio_soak: %lld s, %d kills, %d lost\n", static_cast<long long>(elapsed),
                  kills.load(), tally.lost_total);
      std::fflush(stdout);
    }
  }
  {
    std::lock_guard lock(stop_mu);
    stopping = true;
  }
  stop_cv.notify_all();
  for (auto& t : threads) t.join();

  // Settle: restarted workers come up, finished requests' buffers go. The books must balance
  // within a minute.
  ProcessFigures after = figures_of(server);
  size_t cgroups_after = count_cgroups(instance);
  for (int i = 0; i < 60; ++i) {
    if (after.fds <= before.fds && after.threads <= before.threads &&
        cgroups_after <= cgroups_before) {
      break;
    }
    std::this_thread::sleep_for(seconds(1));
    after = figures_of(server);
    cgroups_after = count_cgroups(instance);
  }

  ::kill(server, SIGTERM);
  int wstatus = 0;
  const auto stop_deadline = Clock::now() + seconds(30);
  pid_t reaped = 0;
  while (reaped == 0 && Clock::now() < stop_deadline) {
    reaped = ::waitpid(server, &wstatus, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(milliseconds(100));
  }
  if (reaped == 0) {
    ::kill(server, SIGKILL);
    ::waitpid(server, &wstatus, 0);
  }
  const bool clean_exit = reaped == server && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
  const size_t cgroups_at_exit = count_cgroups(instance);

  Json report = {{"seconds", run_seconds},
                 {"kills", kills.load()},
                 {"lost", tally.lost_total},
                 {"outcomes", tally.counts},
                 {"longest_healthz_gap_ms", longest_health_gap_ms.load()},
                 {"fds", {before.fds, after.fds}},
                 {"threads", {before.threads, after.threads}},
                 {"rss_kib", {before.rss_kib, after.rss_kib}},
                 {"workers", {before.children, after.children}},
                 {"cgroups", {cgroups_before, cgroups_after, cgroups_at_exit}},
                 {"clean_exit", clean_exit}};
  std::printf("%s\n", report.dump().c_str());
  for (const auto& l : tally.lost) std::printf("lost: %s\n", l.c_str());

  bool ok = true;
  auto expect = [&](bool holds, const std::string& what) {
    if (!holds) std::printf("FAILED: %s\n", what.c_str());
    ok = ok && holds;
  };
  expect(tally.lost_total == 0, "every request got its full answer or one clean error");
  expect(longest_health_gap_ms.load() <= 2000, "/healthz answered at least every 2 s");
  expect(after.fds <= before.fds, "the server holds no more fds than after warm-up");
  expect(after.threads <= before.threads, "the server runs no more threads than after warm-up");
  // RSS: allocator caches may keep some; a leak of a request's buffers per request would not fit.
  expect(after.rss_kib <= before.rss_kib + 64 * 1024, "RSS within 64 MiB of warm-up");
  expect(cgroups_after <= cgroups_before, "no more cgroups than workers after warm-up");
  expect(cgroups_at_exit == 0, "no cgroup left once the server exited");
  expect(clean_exit, "pio serve exits 0 on SIGTERM");
  std::error_code ec;
  fs::remove_all(root, ec);
  std::printf("pio_soak: %s\n", ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
