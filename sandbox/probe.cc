// probe(): asks the kernel what it gives rather than trusting its version number; a distribution
// may disable a feature its kernel was built with.

#include "pio/sandbox/probe.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "internal/cgroup.h"
#include "internal/landlock.h"

namespace pio::sandbox {
namespace {

bool ns_exists(const char* name) {
  return access(fmt::format("/proc/self/ns/{}", name).c_str(), F_OK) == 0;
}

long read_long(const char* path, long fallback) {
  std::ifstream in(path);
  long v = fallback;
  if (!(in >> v)) return fallback;
  return v;
}

}  // namespace

KernelFeatures probe() {
  KernelFeatures f;
  utsname u{};
  if (uname(&u) == 0) f.kernel_release = u.release;
  uint32_t action = SECCOMP_RET_KILL_PROCESS;
  f.seccomp_filter = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
  f.landlock_abi = landlock_abi_version();
  f.user_namespaces = ns_exists("user") && read_long("/proc/sys/user/max_user_namespaces", 0) > 0;
  f.pid_namespaces = ns_exists("pid");
  f.net_namespaces = ns_exists("net");
  f.ipc_namespaces = ns_exists("ipc");
  f.mount_namespaces = ns_exists("mnt");
  f.uts_namespaces = ns_exists("uts");
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  f.pidfd = pidfd >= 0;
  if (pidfd >= 0) close(pidfd);
  f.running_as_root = geteuid() == 0;
  f.cgroup = probe_cgroups();
  return f;
}

std::string KernelFeatures::to_string() const {
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
    return out.empty() ? std::string("none") : out;
  };
  return fmt::format(
      "kernel {}\nseccomp filter: {}\nlandlock ABI: {}\nnamespaces: user {}, pid {}, net {}, "
      "ipc {}, mount {}, uts {}\npidfd: {}\nrunning as root: {}\ncgroup: v{} (v2 mount: {}, v2 "
      "controllers: {}; v1 writable: {}; v1 memsw: {}; swap: {})",
      kernel_release, yes(seccomp_filter),
      landlock_abi == 0 ? std::string("none") : std::to_string(landlock_abi), yes(user_namespaces),
      yes(pid_namespaces), yes(net_namespaces), yes(ipc_namespaces), yes(mount_namespaces),
      yes(uts_namespaces), yes(pidfd), yes(running_as_root), cgroup.version,
      cgroup.v2_mount.empty() ? "none" : cgroup.v2_mount, join(cgroup.v2_controllers),
      join(cgroup.v1_controllers), yes(cgroup.v1_memsw), cgroup.swap_on ? "on" : "off");
}

}  // namespace pio::sandbox
