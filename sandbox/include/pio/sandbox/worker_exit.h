#pragma once
// WorkerExit: how a sandboxed worker ended, classified from its wait status, its rusage and what
// the kernel counted in its cgroup, so that a memory-limit kill reads as such and not as a bare
// SIGKILL.
//
// The one thing a caller gets wrong: kind is the most specific cause the host can prove; a
// worker that hit its pids limit but exited on its own with 0 is kExited, with
// limits.pids_limit_hits still telling that it hit the limit.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pio::sandbox {

enum class ExitKind {
  kExited,            // exit code
  kSignaled,          // killed by a signal nobody here sent for a known reason
  kSeccompViolation,  // SIGSYS: a syscall the policy kills for
  kMemoryLimit,       // the cgroup's OOM killer
  kPidsLimit,         // died after its pids limit refused a fork
  kCpuLimit,          // RLIMIT_CPU
  kDeadline,          // the host killed it when its deadline passed
  kKilledByHost,      // the host killed it for another reason (shutdown, invalid packet)
};
std::string_view exit_kind_name(ExitKind kind);

// What the kernel counted for one worker (cgroup files, read before the cgroup is removed).
struct CgroupCounters {
  uint64_t oom_kills = 0;
  uint64_t memory_limit_hits = 0;  // v1 memory.failcnt, v2 memory.events max
  uint64_t pids_limit_hits = 0;    // pids.events max
  uint64_t cpu_throttled = 0;      // cpu.stat nr_throttled
};

struct WorkerExit {
  ExitKind kind = ExitKind::kExited;
  int exit_code = 0;                      // kExited
  int signal = 0;                         // the terminating signal, when there was one
  std::chrono::microseconds cpu_time{0};  // user + system of the worker itself
  CgroupCounters limits;

  // "memory limit: killed by the cgroup OOM killer (SIGKILL)", "exited with code 3", ...
  std::string to_string() const;
};

// Host-side facts that, with the wait status, decide the kind.
struct ExitContext {
  bool killed_for_deadline = false;
  bool killed_by_host = false;
  uint64_t cpu_limit_seconds = 0;  // 0 = none
};

// Pure: classifies a waitid() result. `code` is si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED),
// `status` si_status.
WorkerExit classify_exit(int code, int status, std::chrono::microseconds cpu_time,
                         const CgroupCounters& counters, const ExitContext& context);

}  // namespace pio::sandbox
