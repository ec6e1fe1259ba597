#pragma once
// PathGuard: decides whether a path a plugin asked for lies inside the plugin's model roots, and
// open_beneath(), the worker's way of opening it so that the kernel enforces the same thing.
//
// Two sides, two checks (DESIGN.md section 7): the host calls PathGuard::resolve() before it sends
// a LoadModel, and the worker opens the resolved path with open_beneath() relative to a directory
// fd of the root. A path can change between the two (a symlink swapped in); that is why the second
// check is done by the kernel (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) on the very open
// that produces the fd, and landlock limits the worker as a third line.
//
// The one thing a caller gets wrong: resolve() returns a canonical path that was inside the roots
// when it was checked. Opening it later with plain open() undoes the guarantee; open it with
// open_beneath() from a root fd.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::sdk {

class PathGuard {
 public:
  // `roots` must be absolute, existing directories; they are stored canonical (symlinks in the
  // roots themselves resolved). invalid_argument for a relative root, "/" or a root inside
  // /proc, /sys or /dev (each would let magic links in); not_found for a missing one.
  static Result<PathGuard> create(const std::vector<std::filesystem::path>& roots);

  // Host side. `requested` is absolute, or relative to the first root under which it exists.
  // Returns the canonical path when it lies inside a root, after lexical normalisation and after
  // following every symlink; otherwise permission_denied with a message naming the requested
  // path, what it resolved to, and the roots. not_found when it does not exist inside a root.
  Result<std::filesystem::path> resolve(std::string_view requested) const;

  // The root that lexically contains the absolute path `path` (component-wise prefix), and the
  // path relative to it ("." for the root itself). permission_denied when none does.
  Result<std::pair<size_t, std::filesystem::path>> split(const std::filesystem::path& path) const;

  const std::vector<std::filesystem::path>& roots() const { return roots_; }
  // "[/a, /b]", for messages.
  std::string roots_text() const;

 private:
  explicit PathGuard(std::vector<std::filesystem::path> roots) : roots_(std::move(roots)) {}
  std::vector<std::filesystem::path> roots_;
};

// True when `path` equals `root` or lies below it, comparing whole components (both lexically
// normal). "/srv/models2" is not inside "/srv/models".
bool path_is_within(const std::filesystem::path& path, const std::filesystem::path& root);

// Worker side: opens `relative` beneath the directory `root_fd` with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS), O_CLOEXEC added to `flags` (default O_RDONLY). An absolute path, a ".."
// or a symlink leaving the root, and /proc magic links are refused by the kernel:
// permission_denied naming the path. unimplemented on a kernel without openat2 (before 5.6): the
// worker then refuses to open anything rather than open it unchecked.
Result<UniqueFd> open_beneath(int root_fd, std::string_view relative, int flags = 0);

}  // namespace pio::sdk
