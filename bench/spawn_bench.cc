// bench_spawn: spawn-to-ready of the stand-in worker (sandbox_probe "hello"): from just before
// the spawn until its Hello packet is received, per trust level, for low trust with one
// mechanism taken out (where the time goes), and for a plain fork+exec of the same binary with no
// sandbox. The cases take turns within each round, so that load from elsewhere on the machine
// falls on all of them alike; each reports p50/p99 over the rounds and its p50 as a ratio to the
// plain fork+exec p50 of the same run (target: low trust <= 2x).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/launcher.h"
#include "pio/sandbox/policy.h"
#include "pio/sandbox/worker_side.h"

namespace {

using Clock = std::chrono::steady_clock;
using pio::sandbox::Namespace;
using pio::sandbox::Policy;
using pio::sandbox::TrustLevel;
constexpr int kRounds = 100;

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

bool wait_hello(int fd) {
  char buf[1024];
  return recv(fd, buf, sizeof buf, 0) > 0;
}

// One spawn of the worker; returns microseconds to its Hello, or a negative value on failure.
using SpawnOnce = std::function<double()>;

struct Case {
  std::string name;
  SpawnOnce spawn;
  std::vector<double> us;
};

// The baseline: fork() + execve of the same worker, fds arranged, nothing else.
class PlainForkExec {
 public:
  explicit PlainForkExec(std::string worker) : worker_(std::move(worker)) {
    pio::UniqueFd fd(memfd_create("bench-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    // Above the worker's fd range, so that arranging 3 and 5 in the child clobbers nothing.
    stage2_.reset(fcntl(fd.get(), F_DUPFD_CLOEXEC, 64));
  }
  double operator()() {
    char* path = worker_.data();
    char hello[] = "hello";
    char* argv[] = {path, hello, nullptr};
    char* envp[] = {nullptr};
    int pair[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
    pio::UniqueFd host_end(pair[0]);
    pio::UniqueFd worker_end(fcntl(pair[1], F_DUPFD_CLOEXEC, 64));
    close(pair[1]);
    auto t0 = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      dup2(worker_end.get(), pio::sandbox::kControlFd);
      dup2(stage2_.get(), pio::sandbox::kStage2FilterFd);
      execve(worker_.c_str(), argv, envp);
      _exit(127);
    }
    worker_end.reset();
    bool ok = wait_hello(host_end.get());
    auto t1 = Clock::now();
    waitpid(pid, nullptr, 0);
    return ok ? std::chrono::duration<double, std::micro>(t1 - t0).count() : -1;
  }

 private:
  std::string worker_;
  pio::UniqueFd stage2_;
};

class SandboxedSpawn {
 public:
  SandboxedSpawn(boost::asio::io_context& io, pio::sandbox::WorkerLauncher& launcher,
                 const std::string& worker, const std::string& plugin_dir,
                 std::shared_ptr<const pio::sandbox::CompiledPolicy> policy)
      : io_(io),
        launcher_(launcher),
        worker_(worker),
        plugin_dir_(plugin_dir),
        policy_(std::move(policy)) {}
  double operator()() {
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    pio::UniqueFd host_end(sv[0]), worker_end(sv[1]);
    pio::sandbox::SpawnRequest request;
    request.worker_path = worker_;
    request.args = {"hello"};
    request.plugin_dir = plugin_dir_;
    request.control_fd = worker_end.get();
    auto t0 = Clock::now();
    auto worker = launcher_.spawn(*policy_, std::move(request));
    worker_end.reset();
    bool ok = worker.ok() && wait_hello(host_end.get());
    auto t1 = Clock::now();
    if (!worker.ok()) {
      std::fprintf(stderr, "spawn: %s\n", worker.status().to_string().c_str());
      return -1;
    }
    while (!(*worker)->exited()) {
      io_.restart();
      io_.run_one_for(std::chrono::seconds(5));
    }
    return ok ? std::chrono::duration<double, std::micro>(t1 - t0).count() : -1;
  }

 private:
  boost::asio::io_context& io_;
  pio::sandbox::WorkerLauncher& launcher_;
  std::string worker_;
  std::string plugin_dir_;
  std::shared_ptr<const pio::sandbox::CompiledPolicy> policy_;
};

std::vector<Case> g_results;

void BM_SpawnToReady(benchmark::State& state) {
  boost::asio::io_context io;
  char tmpl[] = "/tmp/pio-bench-spawn-XXXXXX";
  std::string root = mkdtemp(tmpl);
  chmod(root.c_str(), 0755);
  std::filesystem::create_directories(root + "/plugin");
  std::filesystem::create_directories(root + "/scratch");
  // A copy beside the scratch root: the build dir may not be reachable for the worker's uid.
  const std::string worker = root + "/sandbox_probe";
  std::filesystem::copy_file(PIO_SANDBOX_PROBE, worker);
  chmod(worker.c_str(), 0755);
  pio::sandbox::LauncherOptions options;
  options.instance_name = "bench" + std::to_string(getpid());
  options.scratch_root = root + "/scratch";
  options.cgroup_base = "/";
  auto launcher = pio::sandbox::WorkerLauncher::create(io, options);
  if (!launcher.ok()) {
    state.SkipWithError(launcher.status().to_string().c_str());
    return;
  }
  std::vector<Case> cases;
  auto plain = std::make_shared<PlainForkExec>(worker);
  cases.push_back({"plain fork+exec", [plain] { return (*plain)(); }, {}});
  auto add = [&](const std::string& name, TrustLevel level, std::function<void(Policy&)> edit) {
    auto policy = pio::sandbox::load_policy(PIO_POLICY_DIR, level);
    if (!policy.ok()) return false;
    if (edit) edit(*policy);
    auto compiled = (*launcher)->compile(*policy);
    if (!compiled.ok()) return false;
    cases.push_back(
        {name, SandboxedSpawn(io, **launcher, worker, root + "/plugin", *compiled), {}});
    return true;
  };
  bool ok =
      add("low", TrustLevel::kLow, nullptr) && add("medium", TrustLevel::kMedium, nullptr) &&
      add("high", TrustLevel::kHigh, nullptr) && add("maximum", TrustLevel::kMaximum, nullptr) &&
      add("low without namespaces", TrustLevel::kLow,
          [](Policy& p) {
            p.namespaces.clear();
            p.scratch_bytes.reset();
          }) &&
      add("low without landlock", TrustLevel::kLow,
          [](Policy& p) { p.filesystem.enabled = false; }) &&
      add("low without seccomp", TrustLevel::kLow, [](Policy& p) { p.seccomp.enabled = false; }) &&
      add("low without cgroup limits", TrustLevel::kLow, [](Policy& p) { p.cgroup = {}; });
  if (!ok) {
    state.SkipWithError("a policy did not load or compile");
    return;
  }
  for (auto _ : state) {
    for (Case& c : cases) {
      double us = c.spawn();
      if (us < 0) {
        state.SkipWithError(("no Hello: " + c.name).c_str());
        return;
      }
      c.us.push_back(us);
    }
  }
  const double plain_p50 = percentile(cases.front().us, 0.5);
  for (const Case& c : cases) {
    std::string key;
    for (char ch : c.name) key += (ch == ' ' || ch == '+') ? '_' : ch;
    state.counters[key + "_p50_us"] = percentile(c.us, 0.5);
    state.counters[key + "_p99_us"] = percentile(c.us, 0.99);
    state.counters[key + "_p50_vs_plain"] = percentile(c.us, 0.5) / plain_p50;
  }
  g_results = cases;
  launcher->reset();
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}

}  // namespace

BENCHMARK(BM_SpawnToReady)->Iterations(kRounds)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (g_results.empty()) return 1;
  const double plain_p50 = percentile(g_results.front().us, 0.5);
  std::printf("\nspawn-to-ready (Hello received), %d rounds, cases interleaved\n", kRounds);
  std::printf("| case | p50 us | p99 us | p50 / plain p50 |\n|---|---|---|---|\n");
  for (const Case& c : g_results) {
    std::printf("| %s | %.0f | %.0f | %.2f |\n", c.name.c_str(), percentile(c.us, 0.5),
                percentile(c.us, 0.99), percentile(c.us, 0.5) / plain_p50);
  }
  return 0;
}
