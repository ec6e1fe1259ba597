#pragma once
// The data behind a CompiledPolicy: what WorkerLauncher::compile decided for this kernel.

#include <string>
#include <vector>

#include "internal/seccomp_program.h"
#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/policy.h"

namespace pio::sandbox {

struct CompiledPolicyData {
  Policy policy;
  std::vector<std::string> degradations;
  // The whole mechanisms among the degradations (CompiledPolicy::missing_features).
  std::vector<std::string> missing;
  int clone_namespace_flags = 0;  // CLONE_NEW* passed to clone() (root host: without USER)
  bool user_namespace = false;
  bool use_landlock = false;
  int landlock_abi = 0;
  BpfProgram stage1;
  sock_fprog stage1_prog{};  // points into stage1.code
  // Sealed memfds with the stage-2 program, without and with the network granted.
  UniqueFd stage2_no_network;
  UniqueFd stage2_network;
  // Enforced limits after degradation (a missing memory controller becomes RLIMIT_AS).
  CgroupLimits cgroup;
  RlimitPolicy rlimits;
};

}  // namespace pio::sandbox
