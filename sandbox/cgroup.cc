// cgroups, host side. v1 and v2 differ only in file names and in how the parent delegates
// controllers; everything else (one dir per worker, counters read at reap, rmdir) is shared.

#include "internal/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "fmt/format.h"

namespace pio::sandbox {
namespace {

struct Mount {
  std::string point;
  std::string fstype;
  std::string super_options;
};

std::vector<Mount> cgroup_mounts() {
  std::vector<Mount> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent maj:min root point options [optional...] - fstype source super_options
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash));
    std::string id, parent, dev, root, point;
    pre >> id >> parent >> dev >> root >> point;
    std::istringstream post(line.substr(dash + 3));
    Mount m;
    std::string source;
    post >> m.fstype >> source >> m.super_options;
    if (m.fstype != "cgroup" && m.fstype != "cgroup2") continue;
    m.point = point;
    out.push_back(m);
  }
  return out;
}

bool has_option(const std::string& options, const std::string& name) {
  std::stringstream s(options);
  std::string opt;
  while (std::getline(s, opt, ',')) {
    if (opt == name) return true;
  }
  return false;
}

// The host's own cgroup path in the hierarchy of `controller` ("" = the v2 line).
std::string own_cgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    if (controller.empty() ? controllers.empty()
                           : (!controllers.empty() && has_option(controllers, controller))) {
      return line.substr(b + 1);
    }
  }
  return "/";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Status write_file(const std::string& path, const std::string& value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_status(fmt::format("cgroup: open {}", path), errno);
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return errno_status(fmt::format("cgroup: write \"{}\" to {}", value, path), errno);
  }
  return ok_status();
}

// "key N" lines (memory.events, pids.events, cpu.stat, memory.oom_control).
uint64_t read_key(const std::string& path, const std::string& key) {
  std::istringstream in(read_file(path));
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

uint64_t read_number(const std::string& path) {
  std::istringstream in(read_file(path));
  uint64_t v = 0;
  in >> v;
  return v;
}

std::string join_path(const std::string& a, const std::string& b) {
  std::string out = a;
  while (!out.empty() && out.back() == '/') out.pop_back();
  std::string tail = b;
  while (!tail.empty() && tail.front() == '/') tail.erase(0, 1);
  if (tail.empty()) return out;
  return out + "/" + tail;
}

Status make_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return errno_status(fmt::format("cgroup: mkdir {}", dir), errno);
  }
  return ok_status();
}

Status remove_dir(const std::string& dir) {
  // An exiting task may still be leaving the cgroup for a moment after it was reaped.
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return ok_status();
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return errno_status(fmt::format("cgroup: rmdir {}", dir), errno);
}

}  // namespace

CgroupFeatures probe_cgroups() {
  CgroupFeatures f;
  std::vector<Mount> mounts = cgroup_mounts();
  for (const Mount& m : mounts) {
    if (m.fstype != "cgroup2") continue;
    f.v2_mount = m.point;
    std::string dir = join_path(m.point, own_cgroup(""));
    std::istringstream controllers(read_file(join_path(dir, "cgroup.controllers")));
    std::string c;
    while (controllers >> c) f.v2_controllers.push_back(c);
    bool all = true;
    for (const char* need : {"memory", "pids", "cpu"}) {
      all = all && std::find(f.v2_controllers.begin(), f.v2_controllers.end(), need) !=
                       f.v2_controllers.end();
    }
    if (all && access(dir.c_str(), W_OK) == 0) f.version = 2;
    break;
  }
  for (const char* controller : {"memory", "pids", "cpu"}) {
    for (const Mount& m : mounts) {
      if (m.fstype == "cgroup" && has_option(m.super_options, controller) &&
          access(m.point.c_str(), W_OK) == 0) {
        f.v1_controllers.push_back(controller);
        if (std::string_view(controller) == "memory") {
          f.v1_memsw = access(join_path(m.point, "memory.memsw.limit_in_bytes").c_str(), F_OK) == 0;
        }
        break;
      }
    }
  }
  if (f.version == 0 && !f.v1_controllers.empty()) f.version = 1;
  // /proc/swaps: a header line, then one line per active swap area.
  std::istringstream swaps(read_file("/proc/swaps"));
  std::string line;
  int lines = 0;
  while (std::getline(swaps, line)) lines += line.empty() ? 0 : 1;
  f.swap_on = lines > 1;
  return f;
}

Result<std::unique_ptr<CgroupParent>> CgroupParent::create(const CgroupFeatures& features,
                                                           const std::string& instance,
                                                           const std::optional<std::string>& base) {
  if (instance.empty() ||
      instance.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
          std::string::npos) {
    return invalid_argument_error(fmt::format(
        "cgroup: instance name \"{}\" must be letters, digits, '_', '-', '.'", instance));
  }
  std::unique_ptr<CgroupParent> parent(new CgroupParent());
  parent->version_ = features.version;
  parent->memsw_ = features.version == 1 && features.v1_memsw;
  std::string leaf = "pio-" + instance;
  if (features.version == 2) {
    std::string dir = join_path(join_path(features.v2_mount, base.value_or(own_cgroup(""))), leaf);
    PIO_RETURN_IF_ERROR(make_dir(dir));
    PIO_RETURN_IF_ERROR(write_file(join_path(dir, "cgroup.subtree_control"), "+memory +pids +cpu"));
    parent->memory_ = parent->pids_ = parent->cpu_ = dir;
  } else if (features.version == 1) {
    std::vector<Mount> mounts = cgroup_mounts();
    for (const std::string& controller : features.v1_controllers) {
      for (const Mount& m : mounts) {
        if (m.fstype != "cgroup" || !has_option(m.super_options, controller)) continue;
        std::string dir =
            join_path(join_path(m.point, base.value_or(own_cgroup(controller))), leaf);
        PIO_RETURN_IF_ERROR(make_dir(dir));
        if (controller == "memory") parent->memory_ = dir;
        if (controller == "pids") parent->pids_ = dir;
        if (controller == "cpu") parent->cpu_ = dir;
        break;
      }
    }
  }
  return parent;
}

CgroupParent::~CgroupParent() {
  for (const std::string& dir : dirs()) remove_dir(dir).ignore();
}

std::vector<std::string> CgroupParent::dirs() const {
  std::vector<std::string> out;
  for (const std::string* d : {&memory_, &pids_, &cpu_}) {
    if (!d->empty() && std::find(out.begin(), out.end(), *d) == out.end()) out.push_back(*d);
  }
  return out;
}

Result<std::unique_ptr<WorkerCgroup>> CgroupParent::create_worker(
    const std::string& name, const CgroupLimits& limits) const {
  std::vector<std::string> dirs;
  std::vector<UniqueFd> fds;
  auto fail = [&](Status s) -> Status {
    fds.clear();
    for (const std::string& d : dirs) remove_dir(d).ignore();
    return s;
  };
  for (const std::string& parent : this->dirs()) {
    std::string dir = join_path(parent, name);
    if (mkdir(dir.c_str(), 0755) != 0) {
      return fail(errno_status(fmt::format("cgroup: mkdir {}", dir), errno));
    }
    dirs.push_back(dir);
  }
  auto set = [&](const std::string& parent, const char* file, const std::string& value) {
    return write_file(join_path(join_path(parent, name), file), value);
  };
  Status s;
  if (version_ == 2) {
    if (limits.memory_bytes) s = set(memory_, "memory.max", std::to_string(*limits.memory_bytes));
    if (s.ok() && limits.memory_bytes) s = set(memory_, "memory.swap.max", "0");
    if (s.ok() && limits.pids_max) s = set(pids_, "pids.max", std::to_string(*limits.pids_max));
    if (s.ok() && limits.cpu_percent) {
      s = set(cpu_, "cpu.max", fmt::format("{} 100000", *limits.cpu_percent * 1000));
    }
  } else {
    if (limits.memory_bytes && has_memory()) {
      s = set(memory_, "memory.limit_in_bytes", std::to_string(*limits.memory_bytes));
      // Memory + swap capped at the same number: no swap beyond the limit, as v2's swap.max 0.
      // (After limit_in_bytes: the kernel refuses a memsw limit below the memory limit.)
      if (s.ok() && memsw_) {
        s = set(memory_, "memory.memsw.limit_in_bytes", std::to_string(*limits.memory_bytes));
      }
    }
    if (s.ok() && limits.pids_max && has_pids()) {
      s = set(pids_, "pids.max", std::to_string(*limits.pids_max));
    }
    if (s.ok() && limits.cpu_percent && has_cpu()) {
      s = set(cpu_, "cpu.cfs_period_us", "100000");
      if (s.ok()) s = set(cpu_, "cpu.cfs_quota_us", std::to_string(*limits.cpu_percent * 1000));
    }
  }
  if (!s.ok()) return fail(s);
  for (const std::string& dir : dirs) {
    // v1: the child moves only itself (one thread) through "tasks", which lets the kernel skip
    // the global threadgroup lock and its RCU grace period that "cgroup.procs" takes (measured
    // here: 3 x cgroup.procs ~2 ms under load, 3 x tasks ~0.1 ms). v2 has no such file for
    // domain cgroups.
    std::string procs = join_path(dir, version_ == 1 ? "tasks" : "cgroup.procs");
    UniqueFd fd(open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return fail(errno_status(fmt::format("cgroup: open {}", procs), errno));
    fds.push_back(std::move(fd));
  }
  return std::make_unique<WorkerCgroup>(std::move(dirs), std::move(fds), version_);
}

WorkerCgroup::WorkerCgroup(std::vector<std::string> dirs, std::vector<UniqueFd> procs_fds,
                           int version)
    : dirs_(std::move(dirs)), procs_fds_(std::move(procs_fds)), version_(version) {}

WorkerCgroup::~WorkerCgroup() {
  if (!removed_) {
    kill_all();
    remove().ignore();
  }
}

std::vector<int> WorkerCgroup::procs_fds() const {
  std::vector<int> out;
  for (const UniqueFd& fd : procs_fds_) out.push_back(fd.get());
  return out;
}

CgroupCounters WorkerCgroup::counters() const {
  CgroupCounters c;
  for (const std::string& dir : dirs_) {
    if (version_ == 2) {
      c.oom_kills = read_key(join_path(dir, "memory.events"), "oom_kill");
      c.memory_limit_hits = read_key(join_path(dir, "memory.events"), "max");
      c.pids_limit_hits = read_key(join_path(dir, "pids.events"), "max");
      c.cpu_throttled = read_key(join_path(dir, "cpu.stat"), "nr_throttled");
    } else if (access(join_path(dir, "memory.oom_control").c_str(), F_OK) == 0) {
      c.oom_kills = read_key(join_path(dir, "memory.oom_control"), "oom_kill");
      c.memory_limit_hits = read_number(join_path(dir, "memory.failcnt"));
    } else if (access(join_path(dir, "pids.events").c_str(), F_OK) == 0) {
      c.pids_limit_hits = read_key(join_path(dir, "pids.events"), "max");
    } else if (access(join_path(dir, "cpu.stat").c_str(), F_OK) == 0) {
      c.cpu_throttled = read_key(join_path(dir, "cpu.stat"), "nr_throttled");
    }
  }
  return c;
}

void WorkerCgroup::kill_all() const {
  if (dirs_.empty()) return;
  const std::string procs = join_path(dirs_.front(), "cgroup.procs");
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::istringstream in(read_file(procs));
    pid_t pid = 0;
    bool any = false;
    while (in >> pid) {
      any = true;
      kill(pid, SIGKILL);
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Status WorkerCgroup::remove() {
  Status first;
  for (const std::string& dir : dirs_) {
    Status s = remove_dir(dir);
    if (first.ok() && !s.ok()) first = s;
  }
  procs_fds_.clear();
  removed_ = first.ok();
  return first;
}

}  // namespace pio::sandbox
