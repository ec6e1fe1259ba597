// Worker side of stage 2: runs after exec, so it may allocate; it must not trust the fd number
// blindly, hence the checks before loading.

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "fmt/format.h"
#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/worker_side.h"

namespace pio::sandbox {

Status apply_stage2_filter(int filter_fd) {
  UniqueFd fd(filter_fd);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return errno_status("stage 2: the filter fd", errno);
  if (!S_ISREG(st.st_mode) || st.st_size % sizeof(sock_filter) != 0 ||
      st.st_size > static_cast<off_t>(BPF_MAXINSNS * sizeof(sock_filter))) {
    return invalid_argument_error(fmt::format(
        "stage 2: fd {} does not hold a BPF program ({} bytes)", filter_fd, st.st_size));
  }
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_WRITE) == 0) {
    return invalid_argument_error("stage 2: the filter memfd is not sealed against writes");
  }
  if (st.st_size == 0) return ok_status();
  std::vector<sock_filter> code(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  if (pread(fd.get(), code.data(), static_cast<size_t>(st.st_size), 0) != st.st_size) {
    return errno_status("stage 2: reading the filter", errno);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return errno_status("stage 2: no_new_privs", errno);
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc != 0) return errno_status("stage 2: seccomp(SET_MODE_FILTER)", rc < 0 ? errno : EAGAIN);
  return ok_status();
}

}  // namespace pio::sandbox
