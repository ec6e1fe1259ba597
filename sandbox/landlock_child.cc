// Child side of Landlock: the scratch rule (its mount exists only here), then restrict_self.
// Async-signal-safe: raw syscalls on a stack struct.

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "internal/landlock.h"

namespace pio::sandbox {
namespace {

struct PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

constexpr int kRulePathBeneath = 1;

}  // namespace

int landlock_restrict_child(int ruleset_fd, const char* scratch_dir, uint64_t scratch_rights) {
  if (scratch_dir != nullptr && scratch_rights != 0) {
    int fd = open(scratch_dir, O_PATH | O_CLOEXEC | O_DIRECTORY);
    if (fd < 0) return errno;
    PathBeneathAttr rule{scratch_rights, fd};
    long rc = syscall(SYS_landlock_add_rule, ruleset_fd, kRulePathBeneath, &rule, 0);
    int err = errno;
    close(fd);
    if (rc != 0) return err;
  }
  if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace pio::sandbox
