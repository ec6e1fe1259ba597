// MountTree, host side: the paths of the policy's filesystem section resolved on the host and
// turned into the steps the child runs (mount_tree_child.cc).

#include "internal/mount_tree.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace pio::sandbox {
namespace {

// Merged-/usr systems reach the dynamic loader and libraries through these (the ELF interpreter
// is /lib64/ld-linux-x86-64.so.2); a link whose target is not in the tree dangles harmlessly.
constexpr const char* kRootLinks[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

bool is_proc_path(const std::string& path) { return under(path, "/proc"); }

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return {};
  return buf;
}

std::string link_text(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

struct Resolved {
  std::string path;  // canonical
  PathAccess access;
  bool device;
  bool directory;
};

}  // namespace

const char* MountTree::keep(std::string s) {
  strings_.push_back(std::move(s));
  return strings_.back().c_str();
}

void MountTree::add_parents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(0, slash);
    if (std::find(made_.begin(), made_.end(), dir) != made_.end()) continue;
    made_.push_back(dir);
    MountStep step;
    step.kind = MountStep::kMkdir;
    step.target = keep(root_dir_ + dir);
    steps_.push_back(step);
  }
}

MountTree MountTree::build(const MountTreeInput& input) {
  MountTree tree;
  tree.root_dir_ = input.root_dir;

  for (const char* link : kRootLinks) {
    struct stat st {};
    if (lstat(link, &st) != 0 || !S_ISLNK(st.st_mode)) continue;
    std::string text = link_text(link);
    if (text.empty()) continue;
    tree.made_.push_back(link);
    MountStep step;
    step.kind = MountStep::kSymlink;
    step.source = tree.keep(text);
    step.target = tree.keep(tree.root_dir_ + link);
    tree.steps_.push_back(step);
  }

  // Resolve each path component by component: a symlink on the way is recreated where it is
  // (so the worker reaches the file by the path the policy names) and the walk goes on from its
  // target; what is bound is the canonical path.
  std::vector<Resolved> resolved;
  auto resolve = [&](const std::string& path, PathAccess access) {
    if (path.empty() || path[0] != '/' || path == input.scratch_dir) return;
    if (input.proc && is_proc_path(path)) {
      struct stat st {};
      if (stat(path.c_str(), &st) != 0 || input.landlock_abi <= 0) return;
      if (tree.child_rule_count_ < kMaxChildRules) {
        tree.child_rules_[tree.child_rule_count_++] = ChildLandlockRule{
            tree.keep(path), landlock_path_rights(input.landlock_abi, access, S_ISDIR(st.st_mode))};
      }
      return;
    }
    std::string current;
    size_t begin = 1;
    while (begin <= path.size()) {
      size_t end = path.find('/', begin);
      if (end == std::string::npos) end = path.size();
      std::string component = path.substr(begin, end - begin);
      begin = end + 1;
      if (component.empty() || component == ".") continue;
      std::string next = current;
      next += '/';
      next += component;
      struct stat st {};
      if (lstat(next.c_str(), &st) != 0) return;  // absent: skipped, as Landlock skips it
      if (S_ISLNK(st.st_mode)) {
        std::string text = link_text(next);
        std::string target = real_path(next);
        if (text.empty() || target.empty()) return;
        if (std::find(tree.made_.begin(), tree.made_.end(), next) == tree.made_.end()) {
          tree.add_parents(next);
          tree.made_.push_back(next);
          MountStep step;
          step.kind = MountStep::kSymlink;
          step.source = tree.keep(text);
          step.target = tree.keep(tree.root_dir_ + next);
          tree.steps_.push_back(step);
        }
        next = target;
      }
      current = next;
    }
    if (current.empty()) return;
    struct stat st {};
    if (stat(current.c_str(), &st) != 0) return;
    if (input.proc && is_proc_path(current)) return;
    resolved.push_back(
        Resolved{current, access, S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode), S_ISDIR(st.st_mode)});
  };
  for (const MountPath& p : input.paths) resolve(p.path, p.access);
  for (const std::string& d : input.devices) resolve(d, PathAccess::kReadWrite);

  // Parents before children; one bind per path with the widest access asked for it; a path
  // inside a bound tree of the same writability needs no bind of its own.
  std::sort(resolved.begin(), resolved.end(),
            [](const Resolved& a, const Resolved& b) { return a.path < b.path; });
  for (size_t i = 0; i < resolved.size(); ++i) {
    Resolved r = resolved[i];
    while (i + 1 < resolved.size() && resolved[i + 1].path == r.path) {
      r.access = std::max(r.access, resolved[++i].access);
    }
    const bool writable = r.access == PathAccess::kReadWrite;
    bool covered = false;
    for (const auto& [dir, access] : tree.bound_) {
      if (under(r.path, dir) && (access == PathAccess::kReadWrite) == writable && !r.device) {
        covered = true;
      }
    }
    if (covered) continue;
    tree.bound_.emplace_back(r.path, r.access);
    tree.add_parents(r.path);
    MountStep mountpoint;
    mountpoint.kind = r.directory ? MountStep::kMkdir : MountStep::kFile;
    mountpoint.target = tree.keep(tree.root_dir_ + r.path);
    tree.steps_.push_back(mountpoint);
    tree.made_.push_back(r.path);
    MountStep bind;
    bind.kind = MountStep::kBind;
    bind.source = tree.keep(r.path);
    bind.target = mountpoint.target;
    bind.read_only = !writable;
    bind.device = r.device;
    tree.steps_.push_back(bind);
  }

  if (!input.scratch_dir.empty()) {
    tree.add_parents(input.scratch_dir);
    MountStep dir;
    dir.kind = MountStep::kMkdir;
    dir.target = tree.keep(tree.root_dir_ + input.scratch_dir);
    tree.steps_.push_back(dir);
    MountStep scratch;
    scratch.kind = MountStep::kScratch;
    scratch.source = tree.keep(input.scratch_dir);
    scratch.target = dir.target;
    scratch.options =
        input.scratch_tmpfs_options.empty() ? nullptr : tree.keep(input.scratch_tmpfs_options);
    scratch.read_only = false;
    tree.steps_.push_back(scratch);
  }

  if (input.proc) {
    tree.add_parents("/proc/");
    MountStep proc;
    proc.kind = MountStep::kProc;
    proc.target = tree.keep(tree.root_dir_ + "/proc");
    tree.steps_.push_back(proc);
    // What programs expect of /dev once /proc is there.
    tree.add_parents("/dev/");
    for (auto [link, text] :
         {std::pair{"/dev/fd", "/proc/self/fd"}, std::pair{"/dev/stdin", "/proc/self/fd/0"},
          std::pair{"/dev/stdout", "/proc/self/fd/1"},
          std::pair{"/dev/stderr", "/proc/self/fd/2"}}) {
      MountStep step;
      step.kind = MountStep::kSymlink;
      step.source = text;
      step.target = tree.keep(tree.root_dir_ + link);
      tree.steps_.push_back(step);
    }
  }
  return tree;
}

std::vector<std::string> MountTree::bound_paths() const {
  std::vector<std::string> out;
  for (const auto& [path, access] : bound_) out.push_back(path);
  return out;
}

}  // namespace pio::sandbox
