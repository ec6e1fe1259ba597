// Host side of Landlock: the ruleset is built before clone() so that the child does one syscall.

#include "internal/landlock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "fmt/format.h"

namespace pio::sandbox {
namespace {

constexpr uint64_t kExecute = 1ull << 0;
constexpr uint64_t kWriteFile = 1ull << 1;
constexpr uint64_t kReadFile = 1ull << 2;
constexpr uint64_t kReadDir = 1ull << 3;
constexpr uint64_t kRefer = 1ull << 13;     // ABI 2
constexpr uint64_t kTruncate = 1ull << 14;  // ABI 3
constexpr uint64_t kIoctlDev = 1ull << 15;  // ABI 5
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;
constexpr uint64_t kNetBindTcp = 1ull << 0;         // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;      // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6
constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;

// The ABI-6 layout; older kernels accept it as long as the fields they do not know are zero.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

uint64_t fs_rights_for_abi(int abi) {
  uint64_t rights = (1ull << 13) - 1;  // ABI 1: bits 0..12
  if (abi >= 2) rights |= kRefer;
  if (abi >= 3) rights |= kTruncate;
  if (abi >= 5) rights |= kIoctlDev;
  return rights;
}

}  // namespace

int landlock_abi_version() {
  long v = syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return v < 0 ? 0 : static_cast<int>(v);
}

// Read-write: everything but device ioctls and executing what was written.
uint64_t landlock_read_write_rights(int abi) {
  return fs_rights_for_abi(abi) & ~(kIoctlDev | kExecute);
}

uint64_t landlock_path_rights(int abi, PathAccess access, bool directory) {
  uint64_t rights = kReadFile | kReadDir;
  if (access == PathAccess::kReadExec) rights |= kExecute;
  if (access == PathAccess::kReadWrite) rights = landlock_read_write_rights(abi);
  if (!directory) rights &= kFileRights;
  return rights & fs_rights_for_abi(abi);
}

Result<LandlockRuleset> build_landlock_ruleset(int abi, const LandlockPaths& paths, bool deny_tcp) {
  if (abi <= 0) return unimplemented_error("landlock: not available on this kernel");
  LandlockRuleset out;
  const uint64_t handled = fs_rights_for_abi(abi);
  RulesetAttr attr{handled, 0, 0};
  if (deny_tcp) {
    if (abi >= 4) {
      attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    } else {
      out.unenforced.push_back(fmt::format("landlock ABI {} cannot restrict TCP (needs 4)", abi));
    }
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
  } else {
    out.unenforced.push_back(
        fmt::format("landlock ABI {} cannot scope signals and abstract sockets (needs 6)", abi));
  }
  if (abi < 3) out.unenforced.push_back("landlock ABI < 3: truncate is not restricted");
  if (abi < 5) out.unenforced.push_back("landlock ABI < 5: device ioctls are not restricted");
  size_t attr_size = abi >= 6 ? sizeof(RulesetAttr) : abi >= 4 ? 16 : 8;
  int fd = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0));
  if (fd < 0) return errno_status("landlock_create_ruleset", errno);
  out.fd.reset(fd);

  auto add = [&](const std::string& path, uint64_t rights) -> Status {
    int pfd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (pfd < 0) {
      if (errno == ENOENT) return ok_status();
      return errno_status(fmt::format("landlock: open {}", path), errno);
    }
    UniqueFd parent(pfd);
    struct stat st {};
    if (fstat(pfd, &st) != 0) return errno_status(fmt::format("landlock: stat {}", path), errno);
    if (!S_ISDIR(st.st_mode)) rights &= kFileRights;
    PathBeneathAttr rule{rights & handled, pfd};
    if (syscall(SYS_landlock_add_rule, out.fd.get(), kRulePathBeneath, &rule, 0) != 0) {
      return errno_status(fmt::format("landlock_add_rule {}", path), errno);
    }
    return ok_status();
  };
  const uint64_t ro = kReadFile | kReadDir;
  for (const auto& p : paths.read_only) PIO_RETURN_IF_ERROR(add(p, ro));
  for (const auto& p : paths.read_exec) PIO_RETURN_IF_ERROR(add(p, ro | kExecute));
  // Read-write: everything but device ioctls and executing what was written.
  for (const auto& p : paths.read_write)
    PIO_RETURN_IF_ERROR(add(p, landlock_read_write_rights(abi)));
  for (const auto& p : paths.devices) {
    PIO_RETURN_IF_ERROR(add(p, kReadFile | kWriteFile | kIoctlDev));
  }
  return out;
}

}  // namespace pio::sandbox
