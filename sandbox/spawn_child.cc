// The child of clone(CLONE_VM | CLONE_VFORK): runs the spawn sequence from a ChildPlan and
// execs the worker. It shares the host's memory and its parent thread is suspended, so
// everything here is async-signal-safe and touches nothing but the plan.

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "internal/cgroup.h"
#include "internal/child_plan.h"
#include "internal/landlock.h"
#include "internal/mount_tree.h"
#include "internal/seccomp_program.h"

namespace pio::sandbox {
namespace {

[[noreturn]] void fail(ChildPlan* plan, SpawnStep step, int err) {
  plan->failed_step = step;
  plan->failed_errno = err;
  _exit(127);
}

}  // namespace

int spawn_child_main(void* arg) {
  ChildPlan* plan = static_cast<ChildPlan*>(arg);

  // The host blocked every signal around clone(). Reset all handlers before anything can
  // unblock them: a host handler must never run on the host's memory from this process.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // glibc-internal signals refuse; that is fine
  }

  if (int err = join_cgroups_child(plan->cgroup_procs_fds, plan->cgroup_fd_count); err != 0) {
    fail(plan, SpawnStep::kCgroupJoin, err);
  }
  if (plan->netns_fd >= 0) {
    if (int err = join_netns_child(plan->netns_fd); err != 0)
      fail(plan, SpawnStep::kJoinNetns, err);
  }
  if (plan->uid_map != nullptr) {
    if (int err = map_own_ids_child(plan->uid_map, plan->gid_map); err != 0) {
      fail(plan, SpawnStep::kUserMap, err);
    }
  }
  if (plan->mount_tree != nullptr) {
    if (int err = build_mount_tree_child(*plan->mount_tree, &plan->failed_path); err != 0) {
      fail(plan, SpawnStep::kMountTree, err);
    }
  } else if (plan->make_mounts_private) {
    if (int err = setup_mounts_child(*plan); err != 0) fail(plan, SpawnStep::kMounts, err);
  }
  if (plan->drop_identity) {
    if (int err = drop_identity_child(plan->uid, plan->gid); err != 0) {
      fail(plan, SpawnStep::kIdentity, err);
    }
  }
  if (plan->unshare_user) {
    if (int err = unshare_user_child(); err != 0) fail(plan, SpawnStep::kUnshareUser, err);
  }
  // Fds before rlimits: lifting the sources needs free fd numbers a low RLIMIT_NOFILE might
  // no longer allow in a host with many open fds.
  if (int err = arrange_fds_child(plan->fds); err != 0) fail(plan, SpawnStep::kFds, err);
  if (int err = apply_rlimits_child(plan->rlimits, plan->rlimit_count); err != 0) {
    fail(plan, SpawnStep::kRlimits, err);
  }
  if (chdir(plan->scratch_dir) != 0) fail(plan, SpawnStep::kChdir, errno);
  if (plan->fds[kSlotLandlock] >= 0) {
    const ChildLandlockRule* rules =
        plan->mount_tree != nullptr ? plan->mount_tree->child_rules() : nullptr;
    const int rule_count = plan->mount_tree != nullptr ? plan->mount_tree->child_rule_count() : 0;
    if (int err = landlock_restrict_child(kSlotLandlock, plan->scratch_dir,
                                          plan->landlock_scratch_rights, rules, rule_count);
        err != 0) {
      fail(plan, SpawnStep::kLandlock, err);
    }
    close(kSlotLandlock);
  }
  if (plan->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    fail(plan, SpawnStep::kNoNewPrivs, errno);
  }
  if (plan->stage1 != nullptr) {
    if (int err = seccomp_load_child(plan->stage1); err != 0) fail(plan, SpawnStep::kSeccomp, err);
  }
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  // The environment is empty: nothing of the host's (tokens, paths) reaches the worker.
  execve(plan->exec_path, plan->argv, plan->envp);
  fail(plan, SpawnStep::kExec, errno);
}

}  // namespace pio::sandbox
