// Child side of Landlock: one syscall, async-signal-safe.

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "internal/landlock.h"

namespace pio::sandbox {

int landlock_restrict_child(int ruleset_fd) {
  if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace pio::sandbox
