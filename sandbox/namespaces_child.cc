// Child side of namespaces. The pid, ipc, mount and uts namespaces come from clone()'s flags
// (and the user namespace too when the host is not root); the network namespace is a shared
// empty one a root host joins (see WorkerLauncher); what is left for the child:
// private mount propagation, the scratch mount, for a host that is not root mapping its own ids
// into the new user namespace (files it creates in its own tmpfs mounts need a mapped owner),
// and, for a root host, shedding root before it enters its own user namespace (a worker never
// runs as the host's uid 0).

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

#include "internal/child_plan.h"

namespace pio::sandbox {

int join_netns_child(int netns_fd) {
  if (setns(netns_fd, CLONE_NEWNET) != 0) return errno;
  return 0;
}

int setup_mounts_child(const ChildPlan& plan) {
  // Nothing mounted in the worker's namespace may propagate back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
  constexpr unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (plan.scratch_tmpfs_options != nullptr) {
    if (mount("pio-scratch", plan.scratch_dir, "tmpfs", kFlags, plan.scratch_tmpfs_options) != 0) {
      return errno;
    }
  } else if (plan.scratch_bind_noexec) {
    if (mount(plan.scratch_dir, plan.scratch_dir, nullptr, MS_BIND, nullptr) != 0) return errno;
    if (mount(nullptr, plan.scratch_dir, nullptr, MS_REMOUNT | MS_BIND | kFlags, nullptr) != 0) {
      return errno;
    }
  }
  return 0;
}

namespace {

int write_file(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  size_t len = 0;
  while (text[len] != '\0') ++len;
  ssize_t n = write(fd, text, len);
  int err = n == static_cast<ssize_t>(len) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

}  // namespace

int map_own_ids_child(const char* uid_map, const char* gid_map) {
  // setgroups must be denied before an unprivileged process may write its gid_map.
  if (int err = write_file("/proc/self/setgroups", "deny"); err != 0) return err;
  if (int err = write_file("/proc/self/uid_map", uid_map); err != 0) return err;
  return write_file("/proc/self/gid_map", gid_map);
}

int drop_identity_child(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0) return errno;
  if (setresgid(gid, gid, gid) != 0) return errno;
  if (setresuid(uid, uid, uid) != 0) return errno;
  return 0;
}

int unshare_user_child() {
  if (unshare(CLONE_NEWUSER) != 0) return errno;
  return 0;
}

}  // namespace pio::sandbox
