// WorkerLauncher: compile a policy against the kernel once, then spawn workers with
// clone(CLONE_VM | CLONE_VFORK) and the ChildPlan the child runs (spawn_child.cc).

#include "pio/sandbox/launcher.h"

#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fmt/format.h"
#include "internal/cgroup.h"
#include "internal/child_plan.h"
#include "internal/compiled_policy.h"
#include "internal/landlock.h"
#include "internal/mount_tree.h"
#include "internal/namespaces.h"
#include "internal/rlimits.h"
#include "pio/sandbox/worker_side.h"
#include "spdlog/spdlog.h"

namespace pio::sandbox {
namespace {

constexpr size_t kChildStackBytes = size_t{256} * 1024;
constexpr int kPidfdIdType = 3;  // P_PIDFD (Linux 5.4)
static_assert(kSlotControl == kControlFd && kSlotArena == kArenaFd &&
              kSlotStage2 == kStage2FilterFd && kSlotLibrary == kPluginLibraryFd);

Result<UniqueFd> sealed_program(const BpfProgram& program) {
  UniqueFd fd(memfd_create("pio-stage2-bpf", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return errno_status("memfd_create for the stage-2 filter", errno);
  size_t bytes = program.code.size() * sizeof(sock_filter);
  if (bytes > 0 && write(fd.get(), program.code.data(), bytes) != static_cast<ssize_t>(bytes)) {
    return errno_status("writing the stage-2 filter", errno);
  }
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return errno_status("sealing the stage-2 filter", errno);
  }
  return fd;
}

template <typename T>
std::optional<T> tighter(std::optional<T> a, std::optional<T> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

std::vector<std::string> expand_globs(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const std::string& pattern : patterns) {
    glob_t g{};
    // glibc calls glob MT-unsafe for changes of the environment or locale while it runs (and for
    // SIGALRM); the host changes neither after it starts.
    if (glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {  // NOLINT(concurrency-mt-unsafe)
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    }
    globfree(&g);
  }
  return out;
}

Status spawn_error(SpawnStep step, int err) {
  return errno_status(fmt::format("spawn step {}", spawn_step_name(step)), err);
}

}  // namespace

const char* spawn_step_name(SpawnStep step) {
  switch (step) {
    case SpawnStep::kNone:
      return "none";
    case SpawnStep::kCgroupJoin:
      return "cgroup_join";
    case SpawnStep::kJoinNetns:
      return "join_netns";
    case SpawnStep::kUserMap:
      return "map_user_ids";
    case SpawnStep::kMounts:
      return "mounts";
    case SpawnStep::kMountTree:
      return "mount_tree";
    case SpawnStep::kIdentity:
      return "drop_identity";
    case SpawnStep::kUnshareUser:
      return "unshare_user";
    case SpawnStep::kFds:
      return "fds";
    case SpawnStep::kRlimits:
      return "rlimits";
    case SpawnStep::kChdir:
      return "chdir_scratch";
    case SpawnStep::kLandlock:
      return "landlock_restrict_self";
    case SpawnStep::kNoNewPrivs:
      return "no_new_privs";
    case SpawnStep::kSeccomp:
      return "seccomp_stage1";
    case SpawnStep::kExec:
      return "execve";
  }
  return "?";
}

CompiledPolicy::CompiledPolicy(std::unique_ptr<CompiledPolicyData> data) : data_(std::move(data)) {}
CompiledPolicy::~CompiledPolicy() = default;
const Policy& CompiledPolicy::policy() const { return data_->policy; }
const std::vector<std::string>& CompiledPolicy::degradations() const { return data_->degradations; }
const std::vector<std::string>& CompiledPolicy::missing_features() const { return data_->missing; }
size_t CompiledPolicy::stage1_instructions() const { return data_->stage1.code.size(); }

WorkerLauncher::WorkerLauncher(boost::asio::io_context& io, LauncherOptions options,
                               KernelFeatures features)
    : io_(io), options_(std::move(options)), features_(std::move(features)) {}

Result<std::unique_ptr<WorkerLauncher>> WorkerLauncher::create(
    boost::asio::io_context& io, LauncherOptions options, std::optional<KernelFeatures> features) {
  if (!options.scratch_root.is_absolute()) {
    return invalid_argument_error(fmt::format("launcher: scratch_root \"{}\" must be absolute",
                                              options.scratch_root.string()));
  }
  std::unique_ptr<WorkerLauncher> launcher(
      new WorkerLauncher(io, std::move(options), features ? *features : probe()));
  if (!launcher->features_.pidfd) {
    return unimplemented_error("launcher: this kernel has no pidfd_open (needs Linux 5.3)");
  }
  PIO_ASSIGN_OR_RETURN(launcher->cgroups_, CgroupParent::create(launcher->features_.cgroup,
                                                                launcher->options_.instance_name,
                                                                launcher->options_.cgroup_base));
  if (launcher->features_.running_as_root && launcher->features_.net_namespaces) {
    // Without it (a container that forbids unshare), each worker gets its own namespace from
    // the clone flags, which fails or works exactly as before.
    auto netns = make_empty_netns();
    if (netns.ok()) {
      launcher->shared_netns_ = std::move(netns).value();
    } else {
      spdlog::warn("sandbox: {}; workers get one network namespace each",
                   netns.status().to_string());
    }
  }
  launcher->dev_null_.reset(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!launcher->dev_null_) return errno_status("launcher: open /dev/null", errno);
  // The empty directory each worker mounts its own root on (in its mount namespace only).
  std::string root_template =
      (launcher->options_.scratch_root / (launcher->options_.instance_name + ".root-XXXXXX"))
          .string();
  if (mkdtemp(root_template.data()) == nullptr) {
    return errno_status(
        fmt::format("launcher: mount root under {}", launcher->options_.scratch_root.string()),
        errno);
  }
  launcher->mount_root_ = root_template;
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_POPULATE, -1, 0);
  if (stack == MAP_FAILED) return errno_status("launcher: child stack", errno);
  launcher->child_stack_ = stack;
  return launcher;
}

WorkerLauncher::~WorkerLauncher() {
  if (child_stack_ != nullptr) munmap(child_stack_, kChildStackBytes);
  if (!mount_root_.empty()) rmdir(mount_root_.c_str());
}

int WorkerLauncher::cgroup_version() const { return cgroups_->version(); }
std::vector<std::string> WorkerLauncher::cgroup_parent_dirs() const { return cgroups_->dirs(); }

Result<std::shared_ptr<const CompiledPolicy>> WorkerLauncher::compile(const Policy& policy) const {
  auto data = std::make_unique<CompiledPolicyData>();
  data->policy = policy;
  data->cgroup = policy.cgroup;
  data->rlimits = policy.rlimits;
  std::vector<std::string> missing;  // whole mechanisms the kernel lacks
  std::vector<std::string>& notes = data->degradations;
  const KernelFeatures& f = features_;

  data->clone_namespace_flags = namespace_clone_flags(policy, f, &data->user_namespace, &missing);
  if (policy.seccomp.enabled && !f.seccomp_filter) {
    missing.push_back("seccomp: the kernel has no seccomp filter mode");
  }
  if (policy.filesystem.enabled) {
    if (f.landlock_abi > 0) {
      data->use_landlock = true;
      data->landlock_abi = f.landlock_abi;
      if (f.landlock_abi < 6) {
        notes.push_back(fmt::format("landlock: ABI {} cannot scope signals or abstract sockets",
                                    f.landlock_abi));
      }
      if (f.landlock_abi < 4 && policy.network == NetworkPolicy::kNone) {
        notes.push_back(fmt::format("landlock: ABI {} cannot restrict TCP", f.landlock_abi));
      }
    } else {
      missing.push_back("landlock: not available; filesystem paths are not restricted");
    }
  }
  if (policy.cgroup.memory_bytes && !cgroups_->has_memory()) {
    missing.push_back("cgroup memory controller: not available; RLIMIT_AS stands in for it");
    data->cgroup.memory_bytes.reset();
    data->rlimits.as_bytes = tighter(data->rlimits.as_bytes, policy.cgroup.memory_bytes);
  }
  if (policy.cgroup.memory_bytes && cgroups_->has_memory() && cgroups_->version() == 1 &&
      !cgroups_->has_memsw() && f.cgroup.swap_on) {
    missing.push_back(
        "cgroup v1 swap accounting (memory.memsw): not available while swap is on; a worker "
        "can exceed its memory limit through swap (boot with swapaccount=1, or turn swap off)");
  }
  if (policy.cgroup.pids_max && !cgroups_->has_pids()) {
    missing.push_back("cgroup pids controller: not available; the process count is not limited");
    data->cgroup.pids_max.reset();
  }
  if (policy.cgroup.cpu_percent && !cgroups_->has_cpu()) {
    missing.push_back("cgroup cpu controller: not available; CPU share is not limited");
    data->cgroup.cpu_percent.reset();
  }

  if (!missing.empty()) {
    if (policy.on_missing_kernel_feature == MissingFeature::kFail && !options_.allow_degraded) {
      std::string list;
      for (const std::string& m : missing) list += (list.empty() ? "" : "; ") + m;
      return failed_precondition_error(fmt::format(
          "policy {}: this kernel cannot enforce it ({}). Fix the kernel, or set allow_degraded "
          "to run {} plugins in degraded mode knowingly",
          trust_level_name(policy.trust_level), list, trust_level_name(policy.trust_level)));
    }
    notes.insert(notes.begin(), missing.begin(), missing.end());
    data->missing = std::move(missing);
  }
  for (const std::string& n : notes) {
    spdlog::warn("sandbox: policy {} degraded: {}", trust_level_name(policy.trust_level), n);
  }

  if (policy.seccomp.enabled && f.seccomp_filter) {
    PIO_ASSIGN_OR_RETURN(data->stage1, compile_stage1(policy.seccomp));
    PIO_ASSIGN_OR_RETURN(BpfProgram s2, compile_stage2(policy.seccomp, false));
    PIO_ASSIGN_OR_RETURN(data->stage2_no_network, sealed_program(s2));
    PIO_ASSIGN_OR_RETURN(BpfProgram s2n, compile_stage2(policy.seccomp, true));
    PIO_ASSIGN_OR_RETURN(data->stage2_network, sealed_program(s2n));
    data->stage1_prog.len = static_cast<unsigned short>(data->stage1.code.size());
    data->stage1_prog.filter = data->stage1.code.data();
  } else {
    PIO_ASSIGN_OR_RETURN(data->stage2_no_network, sealed_program(BpfProgram{}));
    PIO_ASSIGN_OR_RETURN(data->stage2_network, sealed_program(BpfProgram{}));
  }
  return std::shared_ptr<const CompiledPolicy>(std::make_shared<CompiledPolicy>(std::move(data)));
}

Result<std::shared_ptr<Worker>> WorkerLauncher::spawn(const CompiledPolicy& compiled,
                                                      SpawnRequest request) {
  const CompiledPolicyData& cp = compiled.data();
  const Policy& policy = cp.policy;
  if (!request.worker_path.is_absolute()) {
    return invalid_argument_error(
        fmt::format("spawn: worker path \"{}\" must be absolute", request.worker_path.string()));
  }
  if (request.control_fd < 0) return invalid_argument_error("spawn: no control fd");
  const bool network = request.network_requested && policy.network == NetworkPolicy::kOnRequest;
  const bool as_root = features_.running_as_root;
  std::string name = fmt::format("w{}-{}", getpid(), next_worker_++);

  // Scratch dir: private to this worker, owned by the uid it runs as.
  std::filesystem::path scratch = options_.scratch_root / (options_.instance_name + "-" + name);
  std::error_code ec;
  if (!std::filesystem::create_directory(scratch, ec)) {
    return errno_status(fmt::format("spawn: scratch dir {}", scratch.string()),
                        ec ? ec.value() : EEXIST);
  }
  auto drop_scratch = [&] { std::filesystem::remove_all(scratch, ec); };
  const bool drop_identity = as_root && cp.user_namespace;
  if (chmod(scratch.c_str(), 0700) != 0 ||
      (drop_identity && chown(scratch.c_str(), options_.worker_uid, options_.worker_gid) != 0)) {
    Status s = errno_status(fmt::format("spawn: scratch dir {}", scratch.string()), errno);
    drop_scratch();
    return s;
  }

  CgroupLimits limits = cp.cgroup;
  limits.memory_bytes = tighter(limits.memory_bytes, request.limits.memory_bytes);
  limits.pids_max = tighter(limits.pids_max, request.limits.pids_max);
  limits.cpu_percent = tighter(limits.cpu_percent, request.limits.cpu_percent);
  if (!cgroups_->has_memory()) limits.memory_bytes.reset();
  if (!cgroups_->has_pids()) limits.pids_max.reset();
  if (!cgroups_->has_cpu()) limits.cpu_percent.reset();
  std::unique_ptr<WorkerCgroup> cgroup;
  if (cgroups_->version() != 0) {
    auto created = cgroups_->create_worker(name, limits);
    if (!created.ok()) {
      drop_scratch();
      return created.status().with_context("spawn step cgroup_create");
    }
    cgroup = std::move(created).value();
  }

  // One resolution of the filesystem section for both Landlock and the mount tree.
  LandlockPaths paths;
  auto resolve = [&](const std::vector<std::string>& in, std::vector<std::string>& out) {
    for (const std::string& p : in) {
      if (p == "$PLUGIN_DIR") {
        out.push_back(request.plugin_dir.string());
      } else if (p == "$MODEL_DIRS") {
        for (const auto& m : request.model_dirs) out.push_back(m.string());
      } else if (p == "$SCRATCH") {
        out.push_back(scratch.string());
      } else if (p == "$WORKER") {
        out.push_back(request.worker_path.string());
      } else {
        out.push_back(p);
      }
    }
  };
  resolve(policy.filesystem.read_only, paths.read_only);
  resolve(policy.filesystem.read_exec, paths.read_exec);
  resolve(policy.filesystem.read_write, paths.read_write);
  paths.devices = expand_globs(policy.devices.allow);

  UniqueFd ruleset;
  if (cp.use_landlock) {
    auto built = build_landlock_ruleset(cp.landlock_abi, paths, !network);
    if (!built.ok()) {
      drop_scratch();
      return built.status().with_context("spawn step landlock_ruleset");
    }
    ruleset = std::move(built->fd);
  }

  // Everything the child reads lives here, in the host's memory, until clone() returns.
  ChildPlan plan;
  std::vector<int> procs = cgroup ? cgroup->procs_fds() : std::vector<int>();
  plan.cgroup_fd_count = static_cast<int>(procs.size());
  std::copy(procs.begin(), procs.end(), plan.cgroup_procs_fds);
  int ns_flags = cp.clone_namespace_flags;
  if (network && request.host_network) ns_flags &= ~CLONE_NEWNET;
  if ((ns_flags & CLONE_NEWNET) && as_root && shared_netns_) {
    ns_flags &= ~CLONE_NEWNET;
    plan.netns_fd = shared_netns_.get();
  }
  if (cp.user_namespace && !as_root) ns_flags |= CLONE_NEWUSER;
  const std::string uid_map = fmt::format("{0} {0} 1\n", geteuid());
  const std::string gid_map = fmt::format("{0} {0} 1\n", getegid());
  if (ns_flags & CLONE_NEWUSER) {
    plan.uid_map = uid_map.c_str();
    plan.gid_map = gid_map.c_str();
  }
  std::string scratch_str = scratch.string();
  std::string tmpfs_options;
  plan.scratch_dir = scratch_str.c_str();
  std::optional<MountTree> tree;
  if (ns_flags & CLONE_NEWNS) {
    plan.make_mounts_private = true;
    if (policy.scratch_bytes) {
      tmpfs_options = fmt::format("size={},mode=0700", *policy.scratch_bytes);
      if (drop_identity) {
        tmpfs_options += fmt::format(",uid={},gid={}", options_.worker_uid, options_.worker_gid);
      }
      plan.scratch_tmpfs_options = tmpfs_options.c_str();
    } else {
      plan.scratch_bind_noexec = true;
    }
    if (policy.filesystem.enabled) {
      // The worker's root holds what the filesystem section grants and nothing else.
      MountTreeInput input;
      input.root_dir = mount_root_;
      for (const auto& [list, access] : {std::pair{&paths.read_only, PathAccess::kReadOnly},
                                         std::pair{&paths.read_exec, PathAccess::kReadExec},
                                         std::pair{&paths.read_write, PathAccess::kReadWrite}}) {
        for (const std::string& p : *list) input.paths.push_back(MountPath{p, access});
      }
      input.devices = paths.devices;
      input.scratch_dir = scratch_str;
      input.scratch_tmpfs_options = tmpfs_options;
      input.proc = (ns_flags & CLONE_NEWPID) != 0;
      input.landlock_abi = cp.use_landlock ? cp.landlock_abi : 0;
      tree.emplace(MountTree::build(input));
      plan.mount_tree = &*tree;
    }
  }
  plan.drop_identity = drop_identity;
  plan.uid = options_.worker_uid;
  plan.gid = options_.worker_gid;
  plan.unshare_user = drop_identity;

  RlimitPolicy rl = cp.rlimits;
  rl.cpu_seconds = tighter(rl.cpu_seconds, request.cpu_seconds);
  rl.fsize_bytes = tighter(rl.fsize_bytes, request.fsize_bytes);
  plan.rlimit_count = child_rlimits(rl, plan.rlimits);

  plan.fds[kSlotStdin] = dev_null_.get();
  plan.fds[kSlotStdout] = request.log_fd >= 0 ? request.log_fd : dev_null_.get();
  plan.fds[kSlotStderr] = plan.fds[kSlotStdout];
  plan.fds[kSlotControl] = request.control_fd;
  plan.fds[kSlotArena] = request.arena_fd;
  plan.fds[kSlotStage2] = network ? cp.stage2_network.get() : cp.stage2_no_network.get();
  plan.fds[kSlotLandlock] = ruleset.get();
  plan.fds[kSlotLibrary] = request.library_fd;
  if (ruleset && (ns_flags & CLONE_NEWNS) &&
      std::find(policy.filesystem.read_write.begin(), policy.filesystem.read_write.end(),
                "$SCRATCH") != policy.filesystem.read_write.end()) {
    plan.landlock_scratch_rights = landlock_read_write_rights(cp.landlock_abi);
  }
  plan.no_new_privs = true;
  plan.stage1 = cp.stage1.empty() ? nullptr : &cp.stage1_prog;

  std::string path = request.worker_path.string();
  std::vector<std::string> args_storage;
  args_storage.reserve(request.args.size() + 1);
  args_storage.push_back(path);
  for (const std::string& a : request.args) args_storage.push_back(a);
  std::vector<char*> argv;
  argv.reserve(args_storage.size() + 1);
  for (std::string& a : args_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  plan.exec_path = path.c_str();
  plan.argv = argv.data();
  plan.envp = envp;

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  char* stack_top = static_cast<char*>(child_stack_) + kChildStackBytes;
  pid_t pid = clone(spawn_child_main, stack_top,
                    ns_flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ruleset.reset();
  if (pid < 0) {
    cgroup.reset();
    drop_scratch();
    return errno_status(fmt::format("spawn step clone (namespace flags {:#x})", ns_flags),
                        clone_errno);
  }
  UniqueFd owned_pidfd(pidfd);
  if (cgroup) cgroup->close_procs_fds();
  if (plan.failed_step != SpawnStep::kNone) {
    siginfo_t info{};
    syscall(SYS_waitid, kPidfdIdType, owned_pidfd.get(), &info, WEXITED, nullptr);
    if (cgroup) {
      cgroup->kill_all();
      cgroup->remove().ignore();
    }
    drop_scratch();
    if (plan.failed_path != nullptr) {
      return errno_status(
          fmt::format("spawn step {} ({})", spawn_step_name(plan.failed_step), plan.failed_path),
          plan.failed_errno);
    }
    return spawn_error(plan.failed_step, plan.failed_errno);
  }

  ExitContext context;
  context.cpu_limit_seconds = rl.cpu_seconds.value_or(0);
  std::shared_ptr<Worker> worker(new Worker(io_, pid, std::move(owned_pidfd), name,
                                            std::move(cgroup), scratch, context, network,
                                            std::move(request.on_exit)));
  worker->watch();
  return worker;
}

}  // namespace pio::sandbox
