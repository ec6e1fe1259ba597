// Child side of cgroups: the worker joins its cgroup before it allocates anything, so that all
// its memory is charged there (v1 does not move charges of pages touched earlier).

#include <unistd.h>

#include <cerrno>

#include "internal/cgroup.h"

namespace pio::sandbox {

int join_cgroups_child(const int* procs_fds, int count) {
  for (int i = 0; i < count; ++i) {
    if (write(procs_fds[i], "0", 1) != 1) return errno;
  }
  return 0;
}

}  // namespace pio::sandbox
