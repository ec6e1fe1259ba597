#pragma once
// Landlock, split by side of clone(): the host builds the ruleset (paths resolved, rules added)
// before the spawn; the child only calls restrict_self on the fd it inherited.
// The kernel's uapi header on Debian 12 predates ABI 4-6, so the bits are spelled out here.

#include <cstdint>
#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::sandbox {

// landlock_create_ruleset(NULL, 0, VERSION): 0 when the kernel has no Landlock (or it is off).
int landlock_abi_version();

struct LandlockPaths {
  std::vector<std::string> read_only;
  std::vector<std::string> read_exec;
  std::vector<std::string> read_write;
  std::vector<std::string> devices;  // read, write and ioctl
};

struct LandlockRuleset {
  UniqueFd fd;
  // What this ABI could not restrict (for the degradation report).
  std::vector<std::string> unenforced;
};

// Builds a ruleset handling every filesystem right of `abi`, TCP bind/connect when
// `deny_tcp` (ABI >= 4) and abstract-socket and signal scoping (ABI >= 6). Paths that do not
// exist are skipped; a path that exists but cannot be opened is an error naming it.
Result<LandlockRuleset> build_landlock_ruleset(int abi, const LandlockPaths& paths, bool deny_tcp);

// The rights a read-write path gets under `abi` (for the child's scratch rule).
uint64_t landlock_read_write_rights(int abi);

// How the policy's filesystem section grants a path.
enum class PathAccess { kReadOnly, kReadExec, kReadWrite };

// The rights a rule for a path granted `access` carries under `abi` (file rights only when it
// is not a directory), as build_landlock_ruleset gives them.
uint64_t landlock_path_rights(int abi, PathAccess access, bool directory);

// A rule the child adds once its mount tree exists: a fresh /proc has inodes of its own, which a
// rule the host made on its /proc does not reach.
struct ChildLandlockRule {
  const char* path = nullptr;  // as the worker sees it (after pivot_root)
  uint64_t rights = 0;
};

// Child side (async-signal-safe): adds a rule for `scratch_dir` with `scratch_rights` and one
// for each of `rules` (mounts made in the child's own mount namespace, the scratch tmpfs and a
// fresh /proc, which rules on the host's inodes do not reach), then restricts the calling
// process. 0 or an errno.
int landlock_restrict_child(int ruleset_fd, const char* scratch_dir, uint64_t scratch_rights,
                            const ChildLandlockRule* rules, int rule_count);

}  // namespace pio::sandbox
