// MountTree, child side: builds the worker's root from the host's steps and pivot_roots into
// it, as nsjail's mnt.cc does. Async-signal-safe: only syscalls on strings the host prepared.

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "internal/mount_tree.h"

namespace pio::sandbox {
namespace {

// Flags a mount already has that a remount must keep: in a user namespace the kernel locks
// them, and a remount that drops one fails with EPERM. statfs' ST_* bits equal the MS_* ones.
unsigned long kept_flags(const char* target) {
  struct statfs st {};
  if (statfs(target, &st) != 0) return 0;
  return static_cast<unsigned long>(st.f_flags) &
         (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
}

int make(int rc) { return rc == 0 || errno == EEXIST ? 0 : errno; }

int bind(const char* source, const char* target, unsigned long flags) {
  if (mount(source, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
  if (mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | flags | kept_flags(target), nullptr) !=
      0) {
    return errno;
  }
  return 0;
}

int run_step(const MountStep& step) {
  switch (step.kind) {
    case MountStep::kMkdir:
      return make(mkdir(step.target, 0755));
    case MountStep::kFile:
      return make(mknod(step.target, S_IFREG | 0644, 0));
    case MountStep::kSymlink:
      return make(symlink(step.source, step.target));
    case MountStep::kBind: {
      unsigned long flags = MS_NOSUID;
      if (!step.device) flags |= MS_NODEV;
      if (step.read_only) flags |= MS_RDONLY;
      return bind(step.source, step.target, flags);
    }
    case MountStep::kScratch: {
      constexpr unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
      if (step.options != nullptr) {
        if (mount("pio-scratch", step.target, "tmpfs", kFlags, step.options) != 0) return errno;
        return 0;
      }
      return bind(step.source, step.target, kFlags);
    }
    case MountStep::kProc:
      if (mount("proc", step.target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
        return errno;
      }
      return 0;
  }
  return EINVAL;
}

}  // namespace

int build_mount_tree_child(const MountTree& tree, const char** failed_path) {
  const char* root = tree.root_dir();
  *failed_path = "/";
  // Nothing mounted in the worker's namespace may propagate back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
  *failed_path = root;
  if (mount("pio-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
    return errno;
  }
  for (int i = 0; i < tree.step_count(); ++i) {
    const MountStep& step = tree.steps()[i];
    *failed_path = step.target;
    if (int err = run_step(step); err != 0) return err;
  }
  // Only the mount points are in the tmpfs; the worker can add nothing to its root.
  *failed_path = root;
  if (mount(nullptr, root, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
            nullptr) != 0) {
    return errno;
  }
  // pivot_root(".", "."): the old root ends up on top of the new one and is detached at once,
  // so no path leads back to the host's tree.
  if (chdir(root) != 0) return errno;
  if (syscall(SYS_pivot_root, ".", ".") != 0) return errno;
  if (umount2(".", MNT_DETACH) != 0) return errno;
  if (chdir("/") != 0) return errno;
  *failed_path = nullptr;
  return 0;
}

}  // namespace pio::sandbox
