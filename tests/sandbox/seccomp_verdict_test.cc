// What the compiled seccomp programs of the shipped policies answer, evaluated instruction by
// instruction (seccomp_evaluator.h): requests no test machine can issue (a GPU driver's ioctls)
// and the stage-2 narrowing of a granted network. The real-child tests (trust_levels_test.cc)
// show the same verdicts from the kernel where the machine allows it.

#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
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

SyscallCall ioctl_call(uint64_t request) { return {SYS_ioctl, {3, request, 0, 0, 0, 0}}; }
SyscallCall socket_call(uint64_t domain) { return {SYS_socket, {domain, SOCK_STREAM, 0, 0, 0, 0}}; }

// The request numbers as the NVIDIA driver's user-space library issues them: _IOWR('F', nr,
// sizeof(params)) (nv-ioctl-numbers.h, nv_escape.h), sizes as in the driver's param structs.
constexpr uint64_t nv_iowr(uint64_t nr, uint64_t size) {
  return _IOC(_IOC_READ | _IOC_WRITE, 'F', nr, size);
}
constexpr uint64_t kNvidiaRequests[] = {
    nv_iowr(0x2b, 0x30),                  // NV_ESC_RM_ALLOC (NVOS64_PARAMETERS)
    nv_iowr(0x2a, 0x20),                  // NV_ESC_RM_CONTROL (NVOS54_PARAMETERS)
    nv_iowr(0x29, 0x10),                  // NV_ESC_RM_FREE (NVOS00_PARAMETERS)
    nv_iowr(0x4e, 0x38),                  // NV_ESC_RM_MAP_MEMORY
    nv_iowr(0xc8, 0xa00),                 // NV_ESC_CARD_INFO (an array of per-GPU records)
    nv_iowr(0xc9, 0x4),                   // NV_ESC_REGISTER_FD
    nv_iowr(0xd2, 0x48),                  // NV_ESC_CHECK_VERSION_STR
    nv_iowr(0xd3, 0x10),                  // NV_ESC_IOCTL_XFER_CMD
    _IOC(_IOC_READ, 'F', 0xd6, 0x4),      // a read-only escape
    _IOC(_IOC_WRITE, 'F', 0xd7, 0x3fff),  // the largest size the encoding holds
    _IO('F', 0x2b),
};
// nvidia-uvm: plain numbers (uvm_ioctl.h: UVM_IOCTL_BASE(i) is i on Linux), the two
// initialisation requests, and UVM_IS_8_SUPPORTED.
constexpr uint64_t kUvmRequests[] = {1, 2, 37, 55, 75, 2047, 0x30000001, 0x30000002};
// Requests the GPU rules must not let through: other ioctl types, the 'F' type with bits above
// the 32 the kernel reads, numbers just past the UVM ones.
constexpr uint64_t kNotGpuRequests[] = {
    TIOCSTI,
    nv_iowr(0x2b, 0x30) | (uint64_t{1} << 32),
    _IOC(_IOC_READ | _IOC_WRITE, 'G', 0x2b, 0x30),
    _IOC(_IOC_READ | _IOC_WRITE, 'f', 0x01, 0x8),  // FS_IOC_* ('f', not 'F')
    _IOW('T', 0x12, 4),
    0x30000003,
    0x30000001 | (uint64_t{1} << 32),
    2046,
    2048,
    0x1000,
};

TEST(GpuIoctlRules, RealNvidiaDriverRequestsOfEveryDirectionAndSizePassAtMediumAndHigh) {
  for (TrustLevel level : {TrustLevel::kMedium, TrustLevel::kHigh}) {
    Compiled c = compile(level);
    for (uint64_t request : kNvidiaRequests) {
      EXPECT_TRUE(allows(c.verdict(ioctl_call(request), false)))
          << trust_level_name(level) << " refuses nvidia ioctl " << std::hex << request;
    }
  }
}

TEST(GpuIoctlRules, NvidiaUvmRequestsPassAtMediumAndHigh) {
  for (TrustLevel level : {TrustLevel::kMedium, TrustLevel::kHigh}) {
    Compiled c = compile(level);
    for (uint64_t request : kUvmRequests) {
      EXPECT_TRUE(allows(c.verdict(ioctl_call(request), false)))
          << trust_level_name(level) << " refuses nvidia-uvm ioctl " << std::hex << request;
    }
  }
}

TEST(GpuIoctlRules, NothingButTheDriversRequestsPasses) {
  for (TrustLevel level : {TrustLevel::kMedium, TrustLevel::kHigh}) {
    Compiled c = compile(level);
    for (uint64_t request : kNotGpuRequests) {
      EXPECT_FALSE(allows(c.verdict(ioctl_call(request), false)))
          << trust_level_name(level) << " allows ioctl " << std::hex << request;
    }
  }
}

TEST(GpuIoctlRules, LowTrustRefusesEveryGpuRequest) {
  Compiled c = compile(TrustLevel::kLow);
  for (uint64_t request : kNvidiaRequests) {
    EXPECT_FALSE(allows(c.verdict(ioctl_call(request), false))) << std::hex << request;
  }
  for (uint64_t request : kUvmRequests) {
    EXPECT_FALSE(allows(c.verdict(ioctl_call(request), false))) << std::hex << request;
  }
}

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
