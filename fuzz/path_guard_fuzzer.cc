// Fuzzes PathGuard::resolve, PathGuard::split and open_beneath with arbitrary paths against a
// fixed tree: a model root with files, a directory, a symlink inside, and symlinks out of it
// (absolute, relative, through /proc/self/root), next to a directory outside it. The property:
// whatever is accepted lies inside the root, checked independently (the fd's /proc link, the
// canonical path); a violation traps.

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "pio/plugin_sdk/path_guard.h"

namespace {

namespace fs = std::filesystem;

struct Tree {
  fs::path base;
  fs::path root;
  pio::UniqueFd root_fd;
  std::optional<pio::sdk::PathGuard> guard;

  Tree() {
    char tmpl[] = "/tmp/pio-path-guard-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) __builtin_trap();
    base = fs::canonical(tmpl);
    root = base / "models" / "m";
    fs::create_directories(root / "weights");
    fs::create_directories(base / "outside");
    std::ofstream(root / "config.json") << "{}";
    std::ofstream(root / "weights" / "w.bin") << "w";
    std::ofstream(base / "outside" / "secret") << "s";
    fs::create_symlink("weights/w.bin", root / "alias");
    fs::create_symlink(base / "outside" / "secret", root / "abs");
    fs::create_symlink("../../outside/secret", root / "rel");
    fs::create_symlink("/proc/self/root" + (base / "outside").string(), root / "proc");
    fs::create_symlink("weights", root / "dir");
    root_fd.reset(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    auto g = pio::sdk::PathGuard::create({root});
    if (!g.ok() || !root_fd.valid()) __builtin_trap();
    guard.emplace(std::move(*g));
  }
  ~Tree() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

void check_inside(const Tree& tree, const fs::path& path) {
  if (!pio::sdk::path_is_within(path, tree.root)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Tree tree;
  const std::string requested(reinterpret_cast<const char*>(data), size);

  auto resolved = tree.guard->resolve(requested);
  if (resolved.ok()) {
    check_inside(tree, *resolved);
    std::error_code ec;
    check_inside(tree, fs::canonical(*resolved, ec));
  }

  auto split = tree.guard->split(requested);
  if (split.ok()) check_inside(tree, (tree.root / split->second).lexically_normal());

  auto opened = pio::sdk::open_beneath(tree.root_fd.get(), requested);
  if (opened.ok()) {
    std::error_code ec;
    const fs::path target = fs::read_symlink("/proc/self/fd/" + std::to_string(opened->get()), ec);
    if (ec) __builtin_trap();
    check_inside(tree, target);
  }
  return 0;
}
