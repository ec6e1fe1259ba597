#pragma once
// MountTree: the worker's whole filesystem, as nsjail and bubblewrap build it. In its own mount
// namespace the child mounts a tmpfs as the new root, bind-mounts each path the policy's
// filesystem section grants at the same path (read-only unless it is read-write; nosuid, and
// nodev except for device nodes), mounts a fresh /proc for its pid namespace, remounts the
// tmpfs read-only and pivot_roots into it. Everything else of the host (/home, /root, /etc/shadow,
// the host's /tmp and its pids) does not exist for the worker: stat, access and readlink, which
// Landlock does not mediate, find nothing.
//
// The one thing a caller gets wrong: the host builds the tree (every string, every step) before
// clone(); the child only walks `steps` (mount_tree_child.cc, async-signal-safe). The MountTree
// must outlive the clone() call, and paths are taken from the same resolved lists Landlock gets,
// so the two never disagree about what a worker may reach.

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "internal/landlock.h"

namespace pio::sandbox {

struct MountPath {
  std::string path;  // absolute, as the policy resolved it (may be or go through a symlink)
  PathAccess access = PathAccess::kReadOnly;
};

struct MountStep {
  enum Kind : int {
    kMkdir,    // target: a directory of the tree
    kFile,     // target: an empty file to bind a file onto
    kSymlink,  // target -> source (the host's link text)
    kBind,     // source bound at target; read_only, device as flagged
    kScratch,  // the private scratch mount at target (tmpfs with options, else a noexec bind)
    kProc,     // a fresh proc at target
  };
  Kind kind = kMkdir;
  const char* source = nullptr;
  const char* target = nullptr;  // inside the new root (root_dir + path)
  const char* options = nullptr;
  bool read_only = true;
  bool device = false;
};

struct MountTreeInput {
  std::string root_dir;  // an empty host directory the tmpfs root is mounted on
  std::vector<MountPath> paths;
  std::vector<std::string> devices;   // device nodes granted read-write
  std::string scratch_dir;            // host path; becomes the worker's private scratch mount
  std::string scratch_tmpfs_options;  // empty: bind the host dir noexec instead of a tmpfs
  bool proc = false;                  // mount a fresh /proc (only with a pid namespace)
  int landlock_abi = 0;               // > 0: /proc paths get child-side Landlock rules
};

class MountTree {
 public:
  static constexpr int kMaxChildRules = 16;

  // Resolves the paths on the host: missing ones are skipped (as Landlock skips them), symlinks
  // on the way are recreated in the tree and their targets bound, paths under /proc are served
  // by the fresh proc instead of a bind.
  static MountTree build(const MountTreeInput& input);
  // Moving keeps every step's pointers valid (the deque's elements stay where they are).
  MountTree(MountTree&&) = default;
  MountTree& operator=(MountTree&&) = default;
  MountTree(const MountTree&) = delete;
  MountTree& operator=(const MountTree&) = delete;

  const char* root_dir() const { return root_dir_.c_str(); }
  const MountStep* steps() const { return steps_.data(); }
  int step_count() const { return static_cast<int>(steps_.size()); }
  const ChildLandlockRule* child_rules() const { return child_rules_; }
  int child_rule_count() const { return child_rule_count_; }
  // The bound host paths in order (for tests and `pio doctor`-style listings).
  std::vector<std::string> bound_paths() const;

 private:
  MountTree() = default;
  const char* keep(std::string s);
  void add_parents(const std::string& path);
  void add_path(const std::string& path, PathAccess access, bool device);

  std::string root_dir_;
  std::deque<std::string> strings_;  // stable storage for every const char* in steps_
  std::vector<MountStep> steps_;
  std::vector<std::string> made_;  // tree paths already created (dirs, files, links)
  std::vector<std::pair<std::string, PathAccess>> bound_;
  ChildLandlockRule child_rules_[kMaxChildRules];
  int child_rule_count_ = 0;
};

// Child side: builds the tree from `steps` under root_dir, pivot_roots into it and detaches the
// old root. On failure returns the errno and points *failed_path at the step's target.
int build_mount_tree_child(const MountTree& tree, const char** failed_path);

}  // namespace pio::sandbox
