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

// Child side (async-signal-safe): adds a rule for `scratch_dir` with `scratch_rights` (the
// scratch dir is a mount made in the child's own mount namespace, which a rule on the host's
// directory underneath does not reach), then restricts the calling process. 0 or an errno.
int landlock_restrict_child(int ruleset_fd, const char* scratch_dir, uint64_t scratch_rights);

}  // namespace pio::sandbox
