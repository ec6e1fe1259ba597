// bench_spawn: spawn-to-ready of the stand-in worker (sandbox_probe "hello"): from just before
// the spawn until its Hello packet is received, per trust level and for a plain fork+exec of
// the same binary with no sandbox, all in one run. Reports p50/p99 per case and the ratio of
// each p50 to the plain fork+exec p50 (target: low trust <= 2x).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/launcher.h"
#include "pio/sandbox/policy.h"
#include "pio/sandbox/worker_side.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kSpawns = 100;

struct Figures {
  double p50_us = 0;
  double p99_us = 0;
  size_t samples = 0;
};
std::map<std::string, Figures> g_figures;
std::vector<std::string> g_order;

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void record(benchmark::State& state, const std::string& name, const std::vector<double>& us) {
  if (us.empty()) return;
  Figures f{percentile(us, 0.5), percentile(us, 0.99), us.size()};
  g_figures[name] = f;
  if (std::find(g_order.begin(), g_order.end(), name) == g_order.end()) g_order.push_back(name);
  state.counters["p50_us"] = f.p50_us;
  state.counters["p99_us"] = f.p99_us;
  auto plain = g_figures.find("plain_fork_exec");
  if (plain != g_figures.end() && plain->second.p50_us > 0) {
    state.counters["p50_vs_plain"] = f.p50_us / plain->second.p50_us;
  }
}

bool wait_hello(int fd) {
  char buf[1024];
  return recv(fd, buf, sizeof buf, 0) > 0;
}

pio::UniqueFd empty_sealed_memfd() {
  pio::UniqueFd fd(memfd_create("bench-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  // Above the worker's fd range, so that arranging 3 and 5 in the child clobbers nothing.
  return pio::UniqueFd(fcntl(fd.get(), F_DUPFD_CLOEXEC, 64));
}

// The baseline: fork() + execve of the same worker, fds arranged, nothing else.
void BM_PlainForkExec(benchmark::State& state) {
  pio::UniqueFd stage2 = empty_sealed_memfd();
  std::vector<double> us;
  char path[] = PIO_SANDBOX_PROBE;
  char hello[] = "hello";
  char* argv[] = {path, hello, nullptr};
  char* envp[] = {nullptr};
  for (auto _ : state) {
    int pair[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
    int sv[2] = {pair[0], fcntl(pair[1], F_DUPFD_CLOEXEC, 64)};
    close(pair[1]);
    auto t0 = Clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      dup2(sv[1], pio::sandbox::kControlFd);
      dup2(stage2.get(), pio::sandbox::kStage2FilterFd);
      execve(path, argv, envp);
      _exit(127);
    }
    close(sv[1]);
    bool ok = wait_hello(sv[0]);
    auto t1 = Clock::now();
    state.PauseTiming();
    waitpid(pid, nullptr, 0);
    close(sv[0]);
    if (!ok) {
      state.SkipWithError("no Hello from the plain worker");
      break;
    }
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    state.ResumeTiming();
  }
  record(state, "plain_fork_exec", us);
}

// Low trust with one mechanism taken out: where the spawn time goes.
enum class Without { kNothing, kNetNamespace, kAllNamespaces, kLandlock, kSeccomp, kCgroupLimits };

void BM_SandboxedSpawn(benchmark::State& state, pio::sandbox::TrustLevel level,
                       Without without = Without::kNothing, const char* label = nullptr) {
  boost::asio::io_context io;
  char tmpl[] = "/tmp/pio-bench-spawn-XXXXXX";
  std::string root = mkdtemp(tmpl);
  chmod(root.c_str(), 0755);
  std::filesystem::create_directories(root + "/plugin");
  std::filesystem::create_directories(root + "/scratch");
  pio::sandbox::LauncherOptions options;
  options.instance_name = "bench" + std::to_string(getpid());
  options.scratch_root = root + "/scratch";
  options.cgroup_base = "/";
  auto launcher = pio::sandbox::WorkerLauncher::create(io, options);
  auto policy = pio::sandbox::load_policy(PIO_POLICY_DIR, level);
  if (!launcher.ok() || !policy.ok()) {
    state.SkipWithError("launcher or policy");
    return;
  }
  using pio::sandbox::Namespace;
  switch (without) {
    case Without::kNothing:
      break;
    case Without::kNetNamespace:
      std::erase(policy->namespaces, Namespace::kNet);
      break;
    case Without::kAllNamespaces:
      policy->namespaces.clear();
      policy->scratch_bytes.reset();
      break;
    case Without::kLandlock:
      policy->filesystem.enabled = false;
      break;
    case Without::kSeccomp:
      policy->seccomp.enabled = false;
      break;
    case Without::kCgroupLimits:
      policy->cgroup = {};
      break;
  }
  auto compiled = (*launcher)->compile(*policy);
  if (!compiled.ok()) {
    state.SkipWithError(compiled.status().to_string().c_str());
    return;
  }
  std::vector<double> us;
  for (auto _ : state) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    pio::UniqueFd host_end(sv[0]), worker_end(sv[1]);
    pio::sandbox::SpawnRequest request;
    request.worker_path = PIO_SANDBOX_PROBE;
    request.args = {"hello"};
    request.plugin_dir = root + "/plugin";
    request.control_fd = worker_end.get();
    auto t0 = Clock::now();
    auto worker = (*launcher)->spawn(**compiled, std::move(request));
    worker_end.reset();
    bool ok = worker.ok() && wait_hello(host_end.get());
    auto t1 = Clock::now();
    state.PauseTiming();
    if (!ok) {
      state.SkipWithError(worker.ok() ? "no Hello" : worker.status().to_string().c_str());
      break;
    }
    while (!(*worker)->exited()) {
      io.restart();
      io.run_one_for(std::chrono::seconds(5));
    }
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    state.ResumeTiming();
  }
  launcher->reset();
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  record(state, label != nullptr ? label : std::string(pio::sandbox::trust_level_name(level)), us);
}

}  // namespace

BENCHMARK(BM_PlainForkExec)->Iterations(kSpawns)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, low, pio::sandbox::TrustLevel::kLow)
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, medium, pio::sandbox::TrustLevel::kMedium)
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, high, pio::sandbox::TrustLevel::kHigh)
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, maximum, pio::sandbox::TrustLevel::kMaximum)
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, low_without_net_ns, pio::sandbox::TrustLevel::kLow,
                  Without::kNetNamespace, "low without net namespace")
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, low_without_namespaces, pio::sandbox::TrustLevel::kLow,
                  Without::kAllNamespaces, "low without namespaces")
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, low_without_landlock, pio::sandbox::TrustLevel::kLow,
                  Without::kLandlock, "low without landlock")
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SandboxedSpawn, low_without_seccomp, pio::sandbox::TrustLevel::kLow,
                  Without::kSeccomp, "low without seccomp")
    ->Iterations(kSpawns)
    ->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  auto plain = g_figures.find("plain_fork_exec");
  std::printf("\nspawn-to-ready (Hello received), %d spawns each\n", kSpawns);
  std::printf("| case | p50 us | p99 us | p50 / plain p50 |\n|---|---|---|---|\n");
  for (const std::string& name : g_order) {
    const Figures& f = g_figures[name];
    double ratio = plain != g_figures.end() ? f.p50_us / plain->second.p50_us : 0;
    std::printf("| %s | %.0f | %.0f | %.2f |\n", name.c_str(), f.p50_us, f.p99_us, ratio);
  }
  return 0;
}
