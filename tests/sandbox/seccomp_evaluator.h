#pragma once
// SeccompEvaluator: runs a compiled classic-BPF seccomp program on a syscall the way the kernel
// does, without loading it, so a test can ask what a policy answers for any syscall number and
// argument values (including values no test machine can issue, such as a GPU driver's ioctls).
//
// The one thing a caller gets wrong: programs stack. A worker's verdict is stage 1's and stage 2's
// together (the kernel takes the most restrictive); use verdict_of() on both, not one.

#include <linux/filter.h>

#include <array>
#include <cstdint>
#include <vector>

namespace pio::sandbox::testing {

struct SyscallCall {
  int nr = 0;
  std::array<uint64_t, 6> args{};
};

// The program's SECCOMP_RET_* value for `call` on x86-64. A malformed program or one that runs
// off its end fails the current test and returns SECCOMP_RET_KILL_PROCESS.
uint32_t evaluate_seccomp(const std::vector<sock_filter>& program, const SyscallCall& call);

// The action of several stacked programs (empty ones filter nothing): the most restrictive.
uint32_t verdict_of(const std::vector<const std::vector<sock_filter>*>& programs,
                    const SyscallCall& call);

bool allows(uint32_t verdict);

}  // namespace pio::sandbox::testing
