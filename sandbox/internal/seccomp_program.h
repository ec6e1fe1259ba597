#pragma once
// Seccomp, split by side of clone(): the host compiles each policy's filters to classic BPF once
// (libseccomp, seccomp_export_bpf); the child and the worker only load the program.

#include <linux/filter.h>

#include <vector>

#include "pio/ipc/status.h"
#include "pio/sandbox/policy.h"

namespace pio::sandbox {

// A compiled filter. Empty = no filter.
struct BpfProgram {
  std::vector<sock_filter> code;
  bool empty() const { return code.empty(); }
};

// Stage 1: the policy's rules, default action and all.
Result<BpfProgram> compile_stage1(const SeccompPolicy& policy);

// Stage 2: a filter stacked on stage 1 that makes `stage2_deny` fail with EPERM. When the
// network is granted, `socket` stays for AF_INET and AF_INET6 only (never AF_UNIX: the worker's
// one Unix socket is the control socketpair it was given).
Result<BpfProgram> compile_stage2(const SeccompPolicy& policy, bool network_granted);

// Child side (async-signal-safe): loads a program. No-new-privs must already be set.
// Returns 0 or an errno.
int seccomp_load_child(const sock_fprog* program);

}  // namespace pio::sandbox
