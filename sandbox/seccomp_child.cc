// Child side of seccomp: loads a pre-compiled program with one raw syscall (async-signal-safe).

#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "internal/seccomp_program.h"

namespace pio::sandbox {

int seccomp_load_child(const sock_fprog* program) {
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, program) != 0) {
    return errno;
  }
  return 0;
}

}  // namespace pio::sandbox
