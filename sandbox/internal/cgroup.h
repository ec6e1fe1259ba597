#pragma once
// cgroups, host side: one parent per host instance (pio-<instance>) and one cgroup per worker
// below it, v2 where a delegated hierarchy has the memory, pids and cpu controllers, else v1.
// The child only writes "0" into the cgroup.procs fds opened here (cgroup_child.cc).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/policy.h"
#include "pio/sandbox/probe.h"
#include "pio/sandbox/worker_exit.h"

namespace pio::sandbox {

CgroupFeatures probe_cgroups();

class WorkerCgroup {
 public:
  WorkerCgroup(std::vector<std::string> dirs, std::vector<UniqueFd> procs_fds, int version);
  WorkerCgroup(const WorkerCgroup&) = delete;
  WorkerCgroup& operator=(const WorkerCgroup&) = delete;
  ~WorkerCgroup();

  // O_WRONLY fds of each cgroup.procs, for the child to join with write("0").
  std::vector<int> procs_fds() const;
  void close_procs_fds() { procs_fds_.clear(); }
  const std::vector<std::string>& dirs() const { return dirs_; }

  CgroupCounters counters() const;
  // SIGKILLs every process still in the cgroup (a worker without a pid namespace may leave
  // children behind) and waits until it is empty.
  void kill_all() const;
  // Removes the directories; the cgroup must be empty. Idempotent.
  Status remove();

 private:
  std::vector<std::string> dirs_;  // v1: memory, pids, cpu (those present); v2: one
  std::vector<UniqueFd> procs_fds_;
  int version_;
  bool removed_ = false;
};

// The parent cgroup(s) of one host instance. Created on construction, removed on destruction
// (after every worker's cgroup is gone).
class CgroupParent {
 public:
  // `base`: where in each hierarchy to put pio-<instance>; unset = the host's own cgroup.
  static Result<std::unique_ptr<CgroupParent>> create(const CgroupFeatures& features,
                                                      const std::string& instance,
                                                      const std::optional<std::string>& base);
  CgroupParent(const CgroupParent&) = delete;
  CgroupParent& operator=(const CgroupParent&) = delete;
  ~CgroupParent();

  int version() const { return version_; }
  bool has_memory() const { return !memory_.empty(); }
  bool has_pids() const { return !pids_.empty(); }
  bool has_cpu() const { return !cpu_.empty(); }
  // v1: a worker's memory + swap is capped too (memory.memsw.limit_in_bytes).
  bool has_memsw() const { return memsw_; }
  // The parent directories, one per controller (v1) or one (v2).
  std::vector<std::string> dirs() const;

  Result<std::unique_ptr<WorkerCgroup>> create_worker(const std::string& name,
                                                      const CgroupLimits& limits) const;

 private:
  CgroupParent() = default;
  int version_ = 0;
  bool memsw_ = false;
  std::string memory_, pids_, cpu_;  // v2: all three equal the one parent dir
};

// Child side (async-signal-safe): moves the calling process into each cgroup. 0 or an errno.
int join_cgroups_child(const int* procs_fds, int count);

}  // namespace pio::sandbox
