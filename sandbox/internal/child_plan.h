#pragma once
// ChildPlan: everything the child of clone() needs, prepared by the host beforehand, so that
// the child (sharing the host's memory, CLONE_VM | CLONE_VFORK) only makes syscalls: no
// allocation, no locks, no logging, no exceptions. The steps run in the order of DESIGN.md
// section 5; each mechanism's child code is in its own *_child.cc.

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>

namespace pio::sandbox {

class MountTree;

enum class SpawnStep : int {
  kNone = 0,
  kCgroupJoin,
  kJoinNetns,
  kUserMap,
  kMounts,
  kMountTree,
  kIdentity,
  kUnshareUser,
  kFds,
  kRlimits,
  kChdir,
  kLandlock,
  kNoNewPrivs,
  kSeccomp,
  kExec,
};
const char* spawn_step_name(SpawnStep step);

struct ChildRlimit {
  int resource;
  rlimit value;
};

// The fds the child arranges as its 0..7 (source fds in the host; -1 = leave closed).
enum ChildFdSlot {
  kSlotStdin,
  kSlotStdout,
  kSlotStderr,
  kSlotControl,
  kSlotArena,
  kSlotStage2,
  kSlotLandlock,
  kSlotLibrary,
  kSlotCount
};

struct ChildPlan {
  int cgroup_procs_fds[4] = {-1, -1, -1, -1};
  int cgroup_fd_count = 0;

  int netns_fd = -1;  // join this (empty, shared) network namespace instead of a new one

  // Host not root, user namespace from clone(): "<id> <id> 1" lines mapping its own uid and gid.
  const char* uid_map = nullptr;
  const char* gid_map = nullptr;

  bool make_mounts_private = false;             // in the new mount namespace
  const char* scratch_dir = nullptr;            // chdir target
  const char* scratch_tmpfs_options = nullptr;  // mount a private noexec tmpfs there
  bool scratch_bind_noexec = false;             // else: bind the dir onto itself noexec
  // The worker's own root (replaces the three above): pivot_root into it before identity drops.
  const MountTree* mount_tree = nullptr;

  bool drop_identity = false;  // root host: become uid/gid before the user namespace
  uid_t uid = 65534;
  gid_t gid = 65534;
  bool unshare_user = false;

  ChildRlimit rlimits[8] = {};
  int rlimit_count = 0;

  int fds[kSlotCount] = {-1, -1, -1, -1, -1, -1, -1, -1};

  uint64_t landlock_scratch_rights = 0;  // rule the child adds for its scratch mount

  bool no_new_privs = true;
  const sock_fprog* stage1 = nullptr;

  const char* exec_path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;

  // Written by the child when a step fails (the host reads them after clone() returns).
  SpawnStep failed_step = SpawnStep::kNone;
  int failed_errno = 0;
  const char* failed_path = nullptr;  // the mount tree's step that failed, if any
};

// The clone() entry point. Never returns on success (execve); on failure records the step and
// errno in the plan and _exits with 127.
int spawn_child_main(void* plan);

// Per-mechanism child steps (async-signal-safe). Each returns 0 or an errno.
int join_netns_child(int netns_fd);
int map_own_ids_child(const char* uid_map, const char* gid_map);
int setup_mounts_child(const ChildPlan& plan);
int drop_identity_child(uid_t uid, gid_t gid);
int unshare_user_child();
int arrange_fds_child(const int (&fds)[kSlotCount]);
int apply_rlimits_child(const ChildRlimit* rlimits, int count);

}  // namespace pio::sandbox
