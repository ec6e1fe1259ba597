#include "pio/plugin_sdk/path_guard.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "fmt/format.h"

namespace pio::sdk {

namespace fs = std::filesystem;

namespace {

// Roots that would let /proc magic links (or device nodes) inside the guarded tree.
bool is_forbidden_root(const fs::path& root) {
  static const fs::path kForbidden[] = {"/proc", "/sys", "/dev"};
  if (root == root.root_path()) return true;
  for (const auto& f : kForbidden) {
    if (path_is_within(root, f)) return true;
  }
  return false;
}

}  // namespace

bool path_is_within(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    // A trailing separator of a lexically normal root shows up as an empty last component.
    if (r->empty() && std::next(r) == root.end()) return true;
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

Result<PathGuard> PathGuard::create(const std::vector<fs::path>& roots) {
  std::vector<fs::path> canonical_roots;
  for (const auto& root : roots) {
    if (!root.is_absolute()) {
      return invalid_argument_error(
          fmt::format("model root \"{}\" is not absolute", root.string()));
    }
    std::error_code ec;
    fs::path real = fs::canonical(root, ec);
    if (ec) {
      return not_found_error(
          fmt::format("model root \"{}\" cannot be resolved: {}", root.string(), ec.message()));
    }
    if (!fs::is_directory(real, ec)) {
      return invalid_argument_error(
          fmt::format("model root \"{}\" is not a directory", root.string()));
    }
    if (is_forbidden_root(real)) {
      return invalid_argument_error(fmt::format(
          "model root \"{}\" (resolved: \"{}\") is / or inside /proc, /sys or /dev; give the "
          "plugin's model directory instead",
          root.string(), real.string()));
    }
    canonical_roots.push_back(std::move(real));
  }
  return PathGuard(std::move(canonical_roots));
}

std::string PathGuard::roots_text() const {
  std::string text = "[";
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (i > 0) text += ", ";
    text += roots_[i].string();
  }
  return text + "]";
}

Result<std::pair<size_t, fs::path>> PathGuard::split(const fs::path& path) const {
  const fs::path normal = path.lexically_normal();
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (normal.is_absolute() && path_is_within(normal, roots_[i])) {
      fs::path relative = normal.lexically_relative(roots_[i]);
      if (relative.empty()) relative = ".";
      return std::pair<size_t, fs::path>(i, std::move(relative));
    }
  }
  return permission_denied_error(fmt::format(
      "load_model: \"{}\" is outside the plugin's model roots {}", path.string(), roots_text()));
}

Result<fs::path> PathGuard::resolve(std::string_view requested) const {
  if (requested.empty()) return invalid_argument_error("load_model: the model path is empty");
  if (requested.find('\0') != std::string_view::npos) {
    return invalid_argument_error("load_model: the model path contains a NUL byte");
  }
  if (roots_.empty()) {
    return permission_denied_error(
        fmt::format("load_model: \"{}\" refused: the plugin has no model roots", requested));
  }
  const fs::path asked(requested);
  // Lexical step: where the path points before any symlink is followed. A relative path is taken
  // relative to the first root in which it exists (or the first root when it exists nowhere).
  fs::path candidate;
  if (asked.is_absolute()) {
    candidate = asked.lexically_normal();
  } else {
    candidate = (roots_.front() / asked).lexically_normal();
    for (const auto& root : roots_) {
      fs::path c = (root / asked).lexically_normal();
      std::error_code ec;
      if (path_is_within(c, root) && fs::exists(c, ec)) {
        candidate = std::move(c);
        break;
      }
    }
  }
  bool lexically_inside = false;
  for (const auto& root : roots_)
    lexically_inside = lexically_inside || path_is_within(candidate, root);
  if (!lexically_inside) {
    return permission_denied_error(fmt::format(
        "load_model: \"{}\" is outside the plugin's model roots {}", requested, roots_text()));
  }
  // Physical step: follow every symlink (a /proc magic link resolves to where it really points).
  std::error_code ec;
  fs::path real = fs::canonical(candidate, ec);
  if (ec) {
    return not_found_error(
        fmt::format("load_model: \"{}\" does not exist inside the model roots {}: {}", requested,
                    roots_text(), ec.message()));
  }
  for (const auto& root : roots_) {
    if (path_is_within(real, root)) return real;
  }
  return permission_denied_error(
      fmt::format("load_model: \"{}\" resolves to \"{}\" (through a symlink), outside the plugin's "
                  "model roots {}",
                  requested, real.string(), roots_text()));
}

Result<UniqueFd> open_beneath(int root_fd, std::string_view relative, int flags) {
  if (relative.empty()) return invalid_argument_error("open_beneath: empty path");
  const std::string path(relative);
  if (path.find('\0') != std::string::npos) {
    return invalid_argument_error("open_beneath: the path contains a NUL byte");
  }
  open_how how{};
  how.flags = static_cast<uint64_t>((flags == 0 ? O_RDONLY : flags) | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  const int err = errno;
  switch (err) {
    case EXDEV:
      return permission_denied_error(
          fmt::format("open \"{}\": refused, it leaves the model root (\"..\", an absolute path "
                      "or a symlink pointing out)",
                      path));
    case ELOOP:
      return permission_denied_error(fmt::format(
          "open \"{}\": refused, it goes through a /proc magic link or too many symlinks", path));
    case ENOSYS:
      return unimplemented_error(fmt::format(
          "open \"{}\": this kernel has no openat2 (Linux 5.6+); model files cannot be opened "
          "safely",
          path));
    default:
      return errno_status(fmt::format("open \"{}\"", path), err);
  }
}

}  // namespace pio::sdk
