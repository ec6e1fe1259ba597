// What the compiled seccomp programs of the shipped policies answer, evaluated instruction by
// instruction (seccomp_evaluator.h): the stage-2 narrowing of a granted network. The real-child tests (trust_levels_test.cc)
// show the same verdicts from the kernel where the machine allows it.

#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "internal/seccomp_program.h"
#include "pio/sandbox/policy.h"
#include "seccomp_evaluator.h"

namespace pio::sandbox::testing {
namespace {

struct Compiled {
  BpfProgram stage1, stage2, stage2_network;

  uint32_t verdict(const SyscallCall& call, bool network) const {
    return verdict_of({&stage1.code, network ? &stage2_network.code : &stage2.code}, call);
  }
};

Compiled compile(TrustLevel level) {
  auto policy = load_policy(PIO_POLICY_DIR, level);
  EXPECT_TRUE(policy.ok()) << policy.status().to_string();
  Compiled c;
  if (!policy.ok()) return c;
  auto s1 = compile_stage1(policy->seccomp);
  auto s2 = compile_stage2(policy->seccomp, false);
  auto s2n = compile_stage2(policy->seccomp, true);
  EXPECT_TRUE(s1.ok() && s2.ok() && s2n.ok());
  if (s1.ok()) c.stage1 = *s1;
  if (s2.ok()) c.stage2 = *s2;
  if (s2n.ok()) c.stage2_network = *s2n;
  return c;
}

SyscallCall socket_call(uint64_t domain) { return {SYS_socket, {domain, SOCK_STREAM, 0, 0, 0, 0}}; }

TEST(GrantedNetwork, AllowsOnlyInternetSocketsNeverUnixOrNetlink) {
  Compiled c = compile(TrustLevel::kHigh);
  EXPECT_TRUE(allows(c.verdict(socket_call(AF_INET), true)));
  EXPECT_TRUE(allows(c.verdict(socket_call(AF_INET6), true)));
  for (uint64_t domain : {uint64_t{AF_UNIX}, uint64_t{AF_NETLINK}, uint64_t{AF_PACKET},
                          uint64_t{AF_INET} | (uint64_t{1} << 32), uint64_t{0}, uint64_t{3},
                          uint64_t{9}, uint64_t{11}}) {
    uint32_t v = c.verdict(socket_call(domain), true);
    EXPECT_FALSE(allows(v)) << "domain " << domain;
    EXPECT_EQ(v, SECCOMP_RET_ERRNO | EPERM) << "domain " << domain;
  }
  SyscallCall pair{SYS_socketpair, {AF_UNIX, SOCK_STREAM, 0, 0, 0, 0}};
  EXPECT_EQ(c.verdict(pair, true), SECCOMP_RET_ERRNO | EPERM);
  // Without the grant, no socket at all.
  EXPECT_EQ(c.verdict(socket_call(AF_INET), false), SECCOMP_RET_ERRNO | EPERM);
}

}  // namespace
}  // namespace pio::sandbox::testing
