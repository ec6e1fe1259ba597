// Exit classification. Order matters: the host's own kill and the kernel's proofs (SIGSYS,
// oom_kill counter, CPU time at the limit) outrank the bare signal.

#include "pio/sandbox/worker_exit.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "fmt/format.h"

namespace pio::sandbox {

std::string_view exit_kind_name(ExitKind kind) {
  switch (kind) {
    case ExitKind::kExited:
      return "exited";
    case ExitKind::kSignaled:
      return "signaled";
    case ExitKind::kSeccompViolation:
      return "seccomp_violation";
    case ExitKind::kMemoryLimit:
      return "memory_limit";
    case ExitKind::kPidsLimit:
      return "pids_limit";
    case ExitKind::kCpuLimit:
      return "cpu_limit";
    case ExitKind::kDeadline:
      return "deadline";
    case ExitKind::kKilledByHost:
      return "killed_by_host";
  }
  return "?";
}

WorkerExit classify_exit(int code, int status, std::chrono::microseconds cpu_time,
                         const CgroupCounters& counters, const ExitContext& context) {
  WorkerExit e;
  e.cpu_time = cpu_time;
  e.limits = counters;
  const bool signaled = code == CLD_KILLED || code == CLD_DUMPED;
  if (signaled) {
    e.signal = status;
  } else {
    e.exit_code = status;
  }
  // The kernel enforces RLIMIT_CPU on the precise runtime, while rusage is tick-sampled and
  // reads up to ~15% low on a loaded VM (measured). A SIGKILL the host did not send, without an
  // OOM kill, after 75% of the limit was spent is the CPU limit.
  const bool cpu_spent = context.cpu_limit_seconds > 0 &&
                         cpu_time * 4 >= std::chrono::seconds(context.cpu_limit_seconds) * 3;
  if (signaled && status == SIGSYS) {
    e.kind = ExitKind::kSeccompViolation;
  } else if (signaled && status == SIGKILL && counters.oom_kills > 0) {
    e.kind = ExitKind::kMemoryLimit;
  } else if (signaled && status == SIGKILL && context.killed_for_deadline) {
    e.kind = ExitKind::kDeadline;
  } else if (signaled && status == SIGKILL && context.killed_by_host) {
    e.kind = ExitKind::kKilledByHost;
  } else if (signaled && (status == SIGXCPU || (status == SIGKILL && cpu_spent))) {
    e.kind = ExitKind::kCpuLimit;
  } else if (counters.pids_limit_hits > 0 && (signaled || status != 0)) {
    e.kind = ExitKind::kPidsLimit;
  } else {
    e.kind = signaled ? ExitKind::kSignaled : ExitKind::kExited;
  }
  return e;
}

std::string WorkerExit::to_string() const {
  std::string how = signal != 0 ? fmt::format("signal {} ({})", signal,
                                              sigabbrev_np(signal) ? sigabbrev_np(signal) : "?")
                                : fmt::format("exit code {}", exit_code);
  switch (kind) {
    case ExitKind::kExited:
      return fmt::format("exited with code {}", exit_code);
    case ExitKind::kSignaled:
      return fmt::format("killed by {}", how);
    case ExitKind::kSeccompViolation:
      return "seccomp violation: made a syscall its policy forbids (SIGSYS)";
    case ExitKind::kMemoryLimit:
      return fmt::format("memory limit: killed by the cgroup OOM killer ({} kills, {})",
                         limits.oom_kills, how);
    case ExitKind::kPidsLimit:
      return fmt::format("pids limit: {} forks refused, then {}", limits.pids_limit_hits, how);
    case ExitKind::kCpuLimit:
      return fmt::format("CPU limit: {} ms of CPU, then {}", cpu_time.count() / 1000, how);
    case ExitKind::kDeadline:
      return "deadline: killed by the host when its deadline passed";
    case ExitKind::kKilledByHost:
      return "killed by the host";
  }
  return how;
}

}  // namespace pio::sandbox
