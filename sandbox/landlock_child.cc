// Child side of Landlock: the rules for mounts that exist only here (scratch, a fresh /proc),
// then restrict_self.
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

int add_rule(int ruleset_fd, const char* path, uint64_t rights) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return errno;
  PathBeneathAttr rule{rights, fd};
  long rc = syscall(SYS_landlock_add_rule, ruleset_fd, kRulePathBeneath, &rule, 0);
  int err = errno;
  close(fd);
  return rc != 0 ? err : 0;
}

}  // namespace

int landlock_restrict_child(int ruleset_fd, const char* scratch_dir, uint64_t scratch_rights,
                            const ChildLandlockRule* rules, int rule_count) {
  if (scratch_dir != nullptr && scratch_rights != 0) {
    if (int err = add_rule(ruleset_fd, scratch_dir, scratch_rights); err != 0) return err;
  }
  for (int i = 0; i < rule_count; ++i) {
    if (int err = add_rule(ruleset_fd, rules[i].path, rules[i].rights); err != 0) return err;
  }
  if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace pio::sandbox
