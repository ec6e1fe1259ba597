// Host side of seccomp: policy rules -> libseccomp -> exported classic BPF.

#include "internal/seccomp_program.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "fmt/format.h"
#include "pio/ipc/unique_fd.h"

namespace pio::sandbox {
namespace {

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

uint32_t to_scmp(SeccompAction action, int err) {
  switch (action) {
    case SeccompAction::kAllow:
      return SCMP_ACT_ALLOW;
    case SeccompAction::kErrno:
      return SCMP_ACT_ERRNO(static_cast<uint16_t>(err));
    case SeccompAction::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare to_scmp(ArgFilter::Op op) {
  switch (op) {
    case ArgFilter::Op::kEq:
      return SCMP_CMP_EQ;
    case ArgFilter::Op::kNe:
      return SCMP_CMP_NE;
    case ArgFilter::Op::kLt:
      return SCMP_CMP_LT;
    case ArgFilter::Op::kLe:
      return SCMP_CMP_LE;
    case ArgFilter::Op::kGt:
      return SCMP_CMP_GT;
    case ArgFilter::Op::kGe:
      return SCMP_CMP_GE;
    case ArgFilter::Op::kMaskedEq:
      return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

Result<Ctx> new_ctx(uint32_t default_action) {
  Ctx ctx(seccomp_init(default_action));
  if (!ctx) return internal_error("seccomp_init failed");
  // The child sets no-new-privs itself, in the order of the spawn sequence.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc != 0) {
    return errno_status("seccomp_attr_set(NNP)", -rc);
  }
  // A binary tree of syscall numbers instead of a linear scan (libseccomp >= 2.5).
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
  return ctx;
}

Result<BpfProgram> export_bpf(scmp_filter_ctx ctx) {
  UniqueFd mem(memfd_create("pio-seccomp-bpf", MFD_CLOEXEC));
  if (!mem) return errno_status("memfd_create for the seccomp export", errno);
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc != 0) {
    return errno_status("seccomp_export_bpf", -rc);
  }
  struct stat st {};
  if (fstat(mem.get(), &st) != 0) return errno_status("fstat seccomp export", errno);
  if (st.st_size <= 0 || st.st_size % sizeof(sock_filter) != 0) {
    return internal_error(fmt::format("seccomp export has {} bytes", st.st_size));
  }
  BpfProgram out;
  out.code.resize(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  if (pread(mem.get(), out.code.data(), static_cast<size_t>(st.st_size), 0) != st.st_size) {
    return errno_status("read seccomp export", errno);
  }
  return out;
}

// The network a worker is granted is the Internet families, nothing else: an AF_UNIX socket
// would reach every pathname socket DAC allows (a user's agent, a database, the host's own
// sockets), which Landlock up to ABI 7 does not mediate; AF_NETLINK and AF_PACKET are kernel
// surfaces no client needs (glibc's getaddrinfo falls back without netlink). The worker's one
// Unix socket is the control socketpair it was given. The filter allows by default, so the
// rules list what fails: every domain but AF_INET and AF_INET6, compared on all 64 bits (a
// domain with high bits set matches no allowed value and fails too).
Status deny_socket_but_internet(scmp_filter_ctx ctx) {
  static_assert(AF_INET < AF_INET6);
  const int nr = SCMP_SYS(socket);
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  int rc = seccomp_rule_add(ctx, deny, nr, 1, SCMP_A0_64(SCMP_CMP_LT, AF_INET));
  if (rc == 0) rc = seccomp_rule_add(ctx, deny, nr, 1, SCMP_A0_64(SCMP_CMP_GT, AF_INET6));
  for (uint64_t domain = AF_INET + 1; rc == 0 && domain < AF_INET6; ++domain) {
    rc = seccomp_rule_add(ctx, deny, nr, 1, SCMP_A0_64(SCMP_CMP_EQ, domain));
  }
  if (rc != 0) return errno_status("stage 2: socket domains of the granted network", -rc);
  return ok_status();
}

}  // namespace

Result<BpfProgram> compile_stage1(const SeccompPolicy& policy) {
  if (!policy.enabled) return BpfProgram{};
  PIO_ASSIGN_OR_RETURN(Ctx ctx, new_ctx(to_scmp(policy.default_action, policy.default_errno)));
  for (size_t i = 0; i < policy.rules.size(); ++i) {
    const SeccompRule& rule = policy.rules[i];
    std::vector<scmp_arg_cmp> cmps;
    for (const ArgFilter& a : rule.args) {
      cmps.push_back(scmp_arg_cmp{a.index, to_scmp(a.op),
                                  a.op == ArgFilter::Op::kMaskedEq ? a.mask : a.value,
                                  a.op == ArgFilter::Op::kMaskedEq ? a.value : 0});
    }
    for (const std::string& name : rule.syscalls) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      int rc = seccomp_rule_add_array(ctx.get(), to_scmp(rule.action, rule.errno_value), nr,
                                      static_cast<unsigned>(cmps.size()), cmps.data());
      if (rc != 0) {
        return errno_status(fmt::format("seccomp.rules[{}]: adding {}", i, name), -rc);
      }
    }
  }
  return export_bpf(ctx.get());
}

Result<BpfProgram> compile_stage2(const SeccompPolicy& policy, bool network_granted) {
  if (!policy.enabled) return BpfProgram{};
  PIO_ASSIGN_OR_RETURN(Ctx ctx, new_ctx(SCMP_ACT_ALLOW));
  for (const std::string& name : policy.stage2_deny) {
    if (network_granted && name == "socket") {
      PIO_RETURN_IF_ERROR(deny_socket_but_internet(ctx.get()));
      continue;
    }
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc != 0) {
      return errno_status(fmt::format("seccomp.stage2_deny: adding {}", name), -rc);
    }
  }
  return export_bpf(ctx.get());
}

}  // namespace pio::sandbox
