// Child side of fds: the worker gets exactly 0..6 (stdin, stdout, stderr, channel, arena,
// stage-2 filter, landlock ruleset until restrict_self) and nothing else of the host's.

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "internal/child_plan.h"

namespace pio::sandbox {

int arrange_fds_child(const int (&fds)[kSlotCount]) {
  // First lift every source above the target range, so that no dup2 clobbers a later source.
  int lifted[kSlotCount];
  for (int i = 0; i < kSlotCount; ++i) {
    lifted[i] = -1;
    if (fds[i] < 0) continue;
    lifted[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, kSlotCount);
    if (lifted[i] < 0) return errno;
  }
  for (int i = 0; i < kSlotCount; ++i) {
    if (lifted[i] < 0) {
      close(i);
      continue;
    }
    // dup2 clears FD_CLOEXEC on the target: these survive execve.
    if (dup2(lifted[i], i) < 0) return errno;
  }
  if (syscall(SYS_close_range, kSlotCount, ~0u, 0) != 0) {
    if (errno != ENOSYS) return errno;
    for (int fd = kSlotCount; fd < 65536; ++fd) close(fd);
  }
  return 0;
}

}  // namespace pio::sandbox
