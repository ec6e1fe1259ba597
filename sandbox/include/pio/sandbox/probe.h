#pragma once
// KernelFeatures: which sandbox mechanisms the running kernel gives this process. `pio doctor`
// prints it; the launcher compiles policies against it.
//
// The one thing a caller gets wrong: probe() reads /proc and /sys and makes a few syscalls; call
// it once at start-up, not per spawn (WorkerLauncher keeps the result).

#include <string>
#include <vector>

namespace pio::sandbox {

struct CgroupFeatures {
  // 2 where a writable cgroup2 hierarchy with the memory, pids and cpu controllers is
  // delegated to us, 1 where the v1 memory/pids/cpu hierarchies are writable, 0 where neither.
  int version = 0;
  std::string v2_mount;                     // the cgroup2 mount point, when one is mounted
  std::vector<std::string> v2_controllers;  // enabled in our v2 cgroup
  std::vector<std::string> v1_controllers;  // of memory, pids, cpu: mounted and writable
  // v1: the memory controller offers memory.memsw.* (swap accounting), so memory + swap can be
  // capped at the memory limit. v2 always can (memory.swap.max).
  bool v1_memsw = false;
  // Swap is on (an entry in /proc/swaps). Where v1 lacks memsw, a worker's pages then go to swap
  // past its memory limit instead of ending in an OOM kill.
  bool swap_on = false;
};

struct KernelFeatures {
  std::string kernel_release;
  bool seccomp_filter = false;   // seccomp(SECCOMP_SET_MODE_FILTER) and KILL_PROCESS
  int landlock_abi = 0;          // 0 = none
  bool user_namespaces = false;  // user.max_user_namespaces > 0
  bool pid_namespaces = false;
  bool net_namespaces = false;
  bool ipc_namespaces = false;
  bool mount_namespaces = false;
  bool uts_namespaces = false;
  bool pidfd = false;  // pidfd_open
  bool running_as_root = false;
  CgroupFeatures cgroup;

  // Multi-line human-readable summary (for `pio doctor` and logs).
  std::string to_string() const;
};

KernelFeatures probe();

}  // namespace pio::sandbox
