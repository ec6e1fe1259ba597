#pragma once
// WorkerLauncher: starts worker processes inside a compiled trust-level policy and watches them
// die on the host's Asio loop.
//
// The one thing a caller gets wrong: everything here runs on the io_context's thread (spawn,
// kill, the on_exit callbacks); a Worker must stay owned (shared_ptr) until on_exit ran, and
// dropping the last reference to a live Worker kills and reaps it synchronously. Destroy every
// Worker before its WorkerLauncher (the launcher removes the instance's cgroup parent).

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
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

class CgroupParent;
class WorkerCgroup;
struct CompiledPolicyData;

struct LauncherOptions {
  // Names the cgroup parent (pio-<instance_name>) and the scratch dirs; letters, digits, _-.
  std::string instance_name;
  // Per-worker scratch dirs are created below it (it must exist).
  std::filesystem::path scratch_root;
  // Where pio-<instance_name> goes inside each cgroup hierarchy; unset = the host's own cgroup
  // (the delegated place when the host runs as a systemd service with Delegate=yes).
  std::optional<std::string> cgroup_base;
  // The operator knowingly runs policies whose kernel features are missing (docs: degraded mode).
  bool allow_degraded = false;
  // Who the worker becomes when the host runs as root and the policy has the user namespace.
  uid_t worker_uid = 65534;
  gid_t worker_gid = 65534;
};

// A policy made ready for this kernel: BPF compiled, features checked, degradations decided.
// Immutable and shared by every worker spawned with it.
class CompiledPolicy {
 public:
  explicit CompiledPolicy(std::unique_ptr<CompiledPolicyData> data);
  ~CompiledPolicy();
  const Policy& policy() const;
  // What this kernel cannot enforce of the policy, one line each ("landlock: ..."); empty when
  // the policy is enforced in full.
  const std::vector<std::string>& degradations() const;
  // Of those, the whole mechanisms the kernel lacks (not the partial limits of an old Landlock
  // ABI): what on_missing_kernel_feature and allow_degraded decide on. `pio doctor` reports them.
  const std::vector<std::string>& missing_features() const;
  // Instructions in the stage-1 BPF program (0 without seccomp).
  size_t stage1_instructions() const;
  const CompiledPolicyData& data() const { return *data_; }

 private:
  std::unique_ptr<CompiledPolicyData> data_;
};

struct SpawnRequest {
  std::filesystem::path worker_path;              // absolute
  std::vector<std::string> args;                  // argv[1..]
  std::filesystem::path plugin_dir;               // read-only ($PLUGIN_DIR)
  std::vector<std::filesystem::path> model_dirs;  // read-only ($MODEL_DIRS)
  int control_fd = -1;                            // borrowed; becomes the worker's fd 3
  int arena_fd = -1;                              // borrowed, optional; becomes fd 4
  int log_fd = -1;  // borrowed, optional; the worker's stdout and stderr (else /dev/null)
  // Borrowed, optional; becomes fd 7 (kPluginLibraryFd): the sealed copy of the plugin library
  // the host checked, which the worker maps instead of a path someone could swap.
  int library_fd = -1;
  bool network_requested = false;  // granted only where the policy says on_request
  // The operator's choice: a granted network is the host's network namespace. Otherwise the
  // worker keeps a namespace of its own (no route anywhere, not even to the host's loopback
  // services) and only gets Internet sockets in it.
  bool host_network = false;
  // Tighter limits for this worker than the policy's (never looser: the smaller one wins).
  CgroupLimits limits;
  std::optional<uint64_t> cpu_seconds;
  std::optional<uint64_t> fsize_bytes;
  std::function<void(const WorkerExit&)> on_exit;
};

// One running (or exited) worker process. Created by WorkerLauncher::spawn.
class Worker : public std::enable_shared_from_this<Worker> {
 public:
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::filesystem::path& scratch_dir() const { return scratch_dir_; }
  bool network_granted() const { return network_granted_; }
  // The cgroup dirs of this worker (empty without cgroups); gone after the exit.
  const std::vector<std::string>& cgroup_dirs() const;
  bool exited() const { return exit_.has_value(); }
  const std::optional<WorkerExit>& exit_info() const { return exit_; }

  // SIGKILL; the exit is reported as kKilledByHost.
  void kill();
  // Kills the worker with kDeadline when it is still alive after `timeout`.
  void set_deadline(std::chrono::steady_clock::duration timeout);

 private:
  friend class WorkerLauncher;
  Worker(boost::asio::io_context& io, pid_t pid, UniqueFd pidfd, std::string name,
         std::unique_ptr<WorkerCgroup> cgroup, std::filesystem::path scratch_dir,
         ExitContext context, bool network_granted, std::function<void(const WorkerExit&)> on_exit);
  void watch();
  void reap(bool blocking);

  pid_t pid_;
  std::string name_;
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer deadline_;
  std::unique_ptr<WorkerCgroup> cgroup_;
  std::filesystem::path scratch_dir_;
  ExitContext context_;
  bool network_granted_;
  std::function<void(const WorkerExit&)> on_exit_;
  std::optional<WorkerExit> exit_;
};

class WorkerLauncher {
 public:
  // Creates the instance's cgroup parent. `features` defaults to probe() of this kernel; tests
  // pass a reduced set to see how policies degrade.
  static Result<std::unique_ptr<WorkerLauncher>> create(
      boost::asio::io_context& io, LauncherOptions options,
      std::optional<KernelFeatures> features = {});
  ~WorkerLauncher();
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  const KernelFeatures& features() const { return features_; }
  int cgroup_version() const;
  // The instance's parent cgroup dirs (removed when the launcher is destroyed).
  std::vector<std::string> cgroup_parent_dirs() const;

  // Compiles `policy` for this kernel. A mechanism the kernel lacks fails with
  // failed_precondition naming it, unless the policy says degrade or allow_degraded is set; the
  // degradations are logged and listed in the result.
  Result<std::shared_ptr<const CompiledPolicy>> compile(const Policy& policy) const;

  // Starts a worker. Every failure names the spawn step (cgroup, landlock, seccomp, exec, ...).
  Result<std::shared_ptr<Worker>> spawn(const CompiledPolicy& policy, SpawnRequest request);

 private:
  WorkerLauncher(boost::asio::io_context& io, LauncherOptions options, KernelFeatures features);

  boost::asio::io_context& io_;
  LauncherOptions options_;
  KernelFeatures features_;
  std::unique_ptr<CgroupParent> cgroups_;
  UniqueFd dev_null_;
  UniqueFd shared_netns_;   // root host: the one empty network namespace workers join
  std::string mount_root_;  // empty dir each worker's mount tree is built on
  void* child_stack_ = nullptr;
  uint64_t next_worker_ = 0;
};

}  // namespace pio::sandbox
