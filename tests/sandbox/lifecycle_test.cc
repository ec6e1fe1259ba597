// Cgroups, exit watching and failure reporting: one cgroup per worker under the instance's
// parent, removed at reap; deadlines; spawn failures that name their step; degraded mode.

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class Lifecycle : public SandboxTest {};

TEST_F(Lifecycle, CgroupVersionFollowsWhatTheKernelDelegates) {
  KernelFeatures f = probe();
  EXPECT_EQ(launcher().cgroup_version(), f.cgroup.version);
  bool v2_has_all = true;
  for (const char* c : {"memory", "pids", "cpu"}) {
    v2_has_all = v2_has_all &&
                 std::find(f.cgroup.v2_controllers.begin(), f.cgroup.v2_controllers.end(), c) !=
                     f.cgroup.v2_controllers.end();
  }
  // v1 is the fallback exactly when no cgroup2 hierarchy carries all three controllers.
  if (!v2_has_all) {
    EXPECT_EQ(launcher().cgroup_version(), 1);
  }
  for (const std::string& dir : launcher().cgroup_parent_dirs()) {
    EXPECT_TRUE(std::filesystem::is_directory(dir)) << dir;
    EXPECT_NE(dir.find("/pio-test"), std::string::npos) << dir;
  }
}

TEST_F(Lifecycle, WorkerLivesInItsOwnCgroupWithThePolicyLimitsUntilReaped) {
  ProbeOptions o;
  o.wait_for_exit = false;
  o.edit_request = [](SpawnRequest& r) { r.limits.memory_bytes = 256u << 20; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ASSERT_TRUE(run.hello);
  std::vector<std::string> dirs = run.worker->cgroup_dirs();
  ASSERT_FALSE(dirs.empty());
  for (const std::string& dir : dirs) {
    EXPECT_EQ(read_text(dir + "/cgroup.procs"), std::to_string(run.worker->pid()) + "\n") << dir;
    if (launcher().cgroup_version() == 1) {
      if (dir.find("/memory/") != std::string::npos) {
        EXPECT_EQ(read_text(dir + "/memory.limit_in_bytes"), std::to_string(256u << 20) + "\n");
      } else if (dir.find("/pids/") != std::string::npos) {
        EXPECT_EQ(read_text(dir + "/pids.max"), "64\n");
      } else if (dir.find("/cpu/") != std::string::npos) {
        EXPECT_EQ(read_text(dir + "/cpu.cfs_quota_us"), "100000\n");
      }
    } else {
      EXPECT_EQ(read_text(dir + "/memory.max"), std::to_string(256u << 20) + "\n");
      EXPECT_EQ(read_text(dir + "/pids.max"), "64\n");
    }
  }
  run.worker->kill();
  wait_for_exit(run.worker);
  EXPECT_EQ(run.worker->exit_info()->kind, ExitKind::kKilledByHost);
  for (const std::string& dir : dirs) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

TEST_F(Lifecycle, AWorkersSwapIsCappedAtItsMemoryLimit) {
  // Without the cap, a v1 worker's pages go to swap past memory.limit_in_bytes (memsw is
  // unlimited by default) instead of ending in an OOM kill.
  const CgroupFeatures& f = launcher().features().cgroup;
  ProbeOptions o;
  o.wait_for_exit = false;
  o.edit_request = [](SpawnRequest& r) { r.limits.memory_bytes = 256u << 20; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ASSERT_TRUE(run.hello);
  const std::string limit = std::to_string(256u << 20) + "\n";
  int checked = 0;
  for (const std::string& dir : run.worker->cgroup_dirs()) {
    if (launcher().cgroup_version() == 2) {
      EXPECT_EQ(read_text(dir + "/memory.swap.max"), "0\n");
      ++checked;
    } else if (dir.find("/memory/") != std::string::npos) {
      // Where the kernel has no swap accounting, compile() reports it while swap is on
      // (Degraded.V1WithoutSwapAccountingIsAMissingFeatureWhileSwapIsOn).
      ASSERT_TRUE(f.v1_memsw) << "this kernel has no memory.memsw";
      EXPECT_EQ(read_text(dir + "/memory.memsw.limit_in_bytes"), limit);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1);
  run.worker->kill();
  wait_for_exit(run.worker);
}

std::string ns_of(pid_t pid, const char* ns) {
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns).string();
}

TEST_F(Lifecycle, LowTrustWorkersGetTheirOwnNamespacesAndAnEmptyNetwork) {
  ProbeOptions o;
  o.wait_for_exit = false;
  ProbeRun a = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ProbeRun b = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ASSERT_TRUE(a.hello && b.hello);
  pid_t self = getpid();
  for (const char* ns : {"pid", "ipc", "mnt", "uts", "user", "net"}) {
    EXPECT_NE(ns_of(a.worker->pid(), ns), ns_of(self, ns)) << ns;
  }
  for (const char* ns : {"pid", "ipc", "mnt", "uts", "user"}) {
    EXPECT_NE(ns_of(a.worker->pid(), ns), ns_of(b.worker->pid(), ns)) << ns;
  }
  // The network namespace is the launcher's one empty namespace (nothing in it to reach).
  if (getuid() == 0) {
    EXPECT_EQ(ns_of(a.worker->pid(), "net"), ns_of(b.worker->pid(), "net"));
    std::ifstream dev("/proc/" + std::to_string(a.worker->pid()) + "/net/dev");
    std::string line;
    int interfaces = 0;
    while (std::getline(dev, line)) interfaces += line.find(':') != std::string::npos;
    EXPECT_EQ(interfaces, 1);  // lo only
  }
  a.worker->kill();
  b.worker->kill();
  wait_for_exit(a.worker);
  wait_for_exit(b.worker);
}

TEST_F(Lifecycle, DeadlineKillIsReportedAsDeadline) {
  ProbeOptions o;
  o.wait_for_exit = false;
  ProbeRun run = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ASSERT_TRUE(run.hello);
  run.worker->set_deadline(std::chrono::milliseconds(50));
  wait_for_exit(run.worker);
  EXPECT_EQ(run.worker->exit_info()->kind, ExitKind::kDeadline);
}

TEST_F(Lifecycle, ExitCallbackRunsOnTheLoopWithTheClassifiedExit) {
  std::optional<WorkerExit> seen;
  ProbeOptions o;
  o.edit_request = [&](SpawnRequest& r) { r.on_exit = [&](const WorkerExit& e) { seen = e; }; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"exit", "3"}, o);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->kind, ExitKind::kExited);
  EXPECT_EQ(seen->exit_code, 3);
}

TEST_F(Lifecycle, DroppingALiveWorkerKillsAndReapsIt) {
  ProbeOptions o;
  o.wait_for_exit = false;
  ProbeRun run = run_probe(TrustLevel::kLow, {"sleep"}, o);
  ASSERT_TRUE(run.hello);
  std::vector<std::string> dirs = run.worker->cgroup_dirs();
  run.worker.reset();
  for (const std::string& dir : dirs) EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

TEST_F(Lifecycle, ManyWorkersSpawnedAndReapedLeaveNothingBehind) {
  for (int i = 0; i < 20; ++i) {
    ProbeRun run = run_probe(i % 2 ? TrustLevel::kLow : TrustLevel::kMaximum, {"exit", "0"});
    ASSERT_TRUE(run.exit.has_value());
    EXPECT_EQ(run.exit->kind, ExitKind::kExited);
  }
}

TEST_F(Lifecycle, MissingWorkerExecutableFailsNamingTheExecStep) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.worker_path = "/nonexistent/pio-worker"; };
  ProbeRun run = run_probe(TrustLevel::kMaximum, {"exit", "0"}, o);
  EXPECT_EQ(run.spawn_status.code(), ErrorCode::kNotFound);
  EXPECT_NE(run.spawn_status.message().find("spawn step execve"), std::string::npos)
      << run.spawn_status.message();
}

TEST_F(Lifecycle, WorkerOutsideThePolicysPathsFailsNamingTheExecStep) {
  // A worker binary the policy does not list: it is not in the worker's mount tree (nor would
  // Landlock let it be executed).
  ProbeOptions o;
  o.edit_policy = [](Policy& p) {
    p.filesystem.read_exec.erase(
        std::remove(p.filesystem.read_exec.begin(), p.filesystem.read_exec.end(), "$WORKER"),
        p.filesystem.read_exec.end());
  };
  ProbeRun run = run_probe(TrustLevel::kLow, {"exit", "0"}, o);
  EXPECT_EQ(run.spawn_status.code(), ErrorCode::kNotFound) << run.spawn_status.to_string();
  EXPECT_NE(run.spawn_status.message().find("spawn step execve"), std::string::npos)
      << run.spawn_status.message();
}

// A host that is not root: the user namespace comes first, from the clone flags, and creates
// the others; no cgroup is writable, so low trust only runs degraded (the test allows it).
TEST_F(Lifecycle, NonRootHostSpawnsLowTrustInsideAUserNamespace) {
  ASSERT_EQ(getuid(), 0u) << "the test drops from root to an unprivileged host";
  std::string scratch = root_ + "/scratch-unprivileged";
  mkdir(scratch.c_str(), 0777);
  chmod(scratch.c_str(), 0777);
  pid_t pid = fork();
  if (pid == 0) {
    // Exit codes say which step failed.
    // Dumpable again, as a host started unprivileged is (dropping root made it not): its
    // workers write their own uid_map, which /proc lets only a dumpable process do.
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) {
      _exit(10);
    }
    boost::asio::io_context io;
    LauncherOptions options;
    options.instance_name = "nonroot" + std::to_string(getpid());
    options.scratch_root = scratch;
    options.allow_degraded = true;
    auto l = WorkerLauncher::create(io, options);
    if (!l.ok()) _exit(11);
    auto compiled = (*l)->compile(policy(TrustLevel::kLow));
    if (!compiled.ok()) _exit(12);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) _exit(13);
    SpawnRequest r;
    r.worker_path = probe_path_;
    r.args = {"read_file", host_file_};
    r.plugin_dir = plugin_dir_;
    r.control_fd = sv[1];
    auto w = (*l)->spawn(**compiled, std::move(r));
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.status().to_string().c_str());
      _exit(14);
    }
    close(sv[1]);
    char buf[4096];
    if (recv(sv[0], buf, sizeof buf, 0) <= 0) _exit(15);  // Hello
    ssize_t n = recv(sv[0], buf, sizeof buf, 0);
    // The world-readable host file is not in the worker's mount tree, built in a user namespace.
    if (std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) !=
        "fail open " + std::to_string(ENOENT)) {
      _exit(16);
    }
    while (!(*w)->exited()) io.run_one();
    if ((*w)->exit_info()->kind != ExitKind::kExited) _exit(17);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed step code " << WEXITSTATUS(status);
}

TEST(ExitClassification, SigsysIsASeccompViolationAndOomKillAMemoryLimit) {
  CgroupCounters none;
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGSYS, {}, none, {}).kind, ExitKind::kSeccompViolation);
  CgroupCounters oom;
  oom.oom_kills = 1;
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGKILL, {}, oom, {}).kind, ExitKind::kMemoryLimit);
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGKILL, {}, none, {}).kind, ExitKind::kSignaled);
  ExitContext deadline;
  deadline.killed_for_deadline = true;
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGKILL, {}, none, deadline).kind, ExitKind::kDeadline);
  ExitContext cpu;
  cpu.cpu_limit_seconds = 2;
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGKILL, std::chrono::milliseconds(1700), none, cpu).kind,
            ExitKind::kCpuLimit);
  EXPECT_EQ(classify_exit(CLD_KILLED, SIGKILL, std::chrono::milliseconds(100), none, cpu).kind,
            ExitKind::kSignaled);
  CgroupCounters pids;
  pids.pids_limit_hits = 3;
  EXPECT_EQ(classify_exit(CLD_EXITED, 1, {}, pids, {}).kind, ExitKind::kPidsLimit);
  EXPECT_EQ(classify_exit(CLD_EXITED, 0, {}, pids, {}).kind, ExitKind::kExited);
  EXPECT_NE(classify_exit(CLD_KILLED, SIGKILL, {}, oom, {}).to_string().find("memory limit"),
            std::string::npos);
}

// A kernel without Landlock and without the memory controller, as the launcher would see it.
class Degraded : public SandboxTest {
 protected:
  std::unique_ptr<WorkerLauncher> reduced_launcher(bool allow_degraded) {
    KernelFeatures f = probe();
    f.landlock_abi = 0;
    std::erase(f.cgroup.v1_controllers, "memory");
    if (f.cgroup.version == 2) f.cgroup.version = 1;
    LauncherOptions options;
    options.instance_name = "degraded" + std::to_string(getpid());
    options.scratch_root = root_ + "/scratch";
    options.cgroup_base = "/";
    options.allow_degraded = allow_degraded;
    auto l = WorkerLauncher::create(*io_, options, f);
    PIO_CHECK(l.ok());
    return std::move(l).value();
  }
};

TEST_F(Degraded, LowTrustFailsClosedNamingTheMissingMechanisms) {
  auto l = reduced_launcher(false);
  auto compiled = l->compile(policy(TrustLevel::kLow));
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(compiled.status().message().find("landlock: not available"), std::string::npos)
      << compiled.status().message();
  EXPECT_NE(compiled.status().message().find("cgroup memory controller"), std::string::npos);
  EXPECT_NE(compiled.status().message().find("allow_degraded"), std::string::npos);
}

TEST_F(Degraded, MediumTrustDegradesAndSaysWhat) {
  auto l = reduced_launcher(false);
  auto compiled = l->compile(policy(TrustLevel::kMedium));
  ASSERT_TRUE(compiled.ok()) << compiled.status().to_string();
  const auto& notes = (*compiled)->degradations();
  EXPECT_TRUE(std::any_of(notes.begin(), notes.end(),
                          [](const std::string& n) { return n.starts_with("landlock"); }));
}

TEST_F(Degraded, AllowedDegradedLowTrustRunsWithTheDocumentedWeakerGuarantees) {
  auto l = reduced_launcher(true);
  Policy low = policy(TrustLevel::kLow);
  low.cgroup.memory_bytes = 256u << 20;
  auto compiled = l->compile(low);
  ASSERT_TRUE(compiled.ok()) << compiled.status().to_string();
  EXPECT_GE((*compiled)->degradations().size(), 2u);
  // The whole mechanisms are listed apart from the notes (what pio doctor reports as missing).
  const auto& missing = (*compiled)->missing_features();
  auto names = [&](std::string_view prefix) {
    return std::any_of(missing.begin(), missing.end(),
                       [&](const std::string& m) { return m.starts_with(prefix); });
  };
  EXPECT_TRUE(names("landlock: not available"));
  EXPECT_TRUE(names("cgroup memory controller"));
  EXPECT_FALSE(names("landlock: ABI"));

  auto spawn = [&](std::vector<std::string> args) {
    int sv[2];
    PIO_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd host_end(sv[0]), worker_end(sv[1]);
    SpawnRequest r;
    r.worker_path = probe_path_;
    r.args = std::move(args);
    r.plugin_dir = plugin_dir_;
    r.control_fd = worker_end.get();
    auto w = l->spawn(**compiled, std::move(r));
    PIO_CHECK(w.ok());
    worker_end.reset();
    std::string report;
    char buf[4096];
    for (int packet = 0; packet < 2; ++packet) {
      ssize_t n = recv(host_end.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      report.assign(buf, static_cast<size_t>(n));
    }
    wait_for_exit(*w);
    return std::make_pair(report, *(*w)->exit_info());
  };
  // Without Landlock the worker is still nobody, in its own namespaces and its own mount tree,
  // under seccomp; the operator was told. A host file the policy does not list is not there.
  EXPECT_EQ(spawn({"read_file", host_file_}).first, "fail open " + std::to_string(ENOENT));
  EXPECT_EQ(spawn({"read_file", "/etc/shadow"}).first, "fail open " + std::to_string(ENOENT));
  EXPECT_EQ(spawn({"read_file", plugin_dir_ + "/plugin.txt"}).first, "ok");
  // RLIMIT_AS stands in for the memory cgroup: the bomb gets ENOMEM instead of an OOM kill.
  auto bomb = spawn({"memory_bomb", "1024"});
  EXPECT_EQ(bomb.first, "fail mmap " + std::to_string(ENOMEM));
  EXPECT_EQ(bomb.second.kind, ExitKind::kExited);
}

TEST_F(Degraded, V1WithoutSwapAccountingIsAMissingFeatureWhileSwapIsOn) {
  // A v1 kernel booted with swapaccount=0 has no memory.memsw: with swap on, a memory limit
  // could be exceeded through swap, which is reported, never silently allowed.
  auto launcher_with = [&](bool swap_on) {
    KernelFeatures f = probe();
    f.cgroup.version = 1;
    f.cgroup.v1_memsw = false;
    f.cgroup.swap_on = swap_on;
    LauncherOptions options;
    options.instance_name = "memsw" + std::to_string(getpid());
    options.scratch_root = root_ + "/scratch";
    options.cgroup_base = "/";
    auto l = WorkerLauncher::create(*io_, options, f);
    PIO_CHECK(l.ok());
    return std::move(l).value();
  };
  auto names_memsw = [](const std::vector<std::string>& list) {
    return std::any_of(list.begin(), list.end(), [](const std::string& m) {
      return m.find("memory.memsw") != std::string::npos;
    });
  };
  {
    auto l = launcher_with(true);
    const auto& v1 = l->features().cgroup.v1_controllers;
    ASSERT_NE(std::find(v1.begin(), v1.end(), "memory"), v1.end())
        << "the v1 memory controller is needed to show this";
    auto low = l->compile(policy(TrustLevel::kLow));
    ASSERT_FALSE(low.ok());
    EXPECT_NE(low.status().message().find("memory.memsw"), std::string::npos)
        << low.status().message();
    auto medium = l->compile(policy(TrustLevel::kMedium));
    ASSERT_TRUE(medium.ok()) << medium.status().to_string();
    EXPECT_TRUE(names_memsw((*medium)->missing_features()));
  }
  {
    auto l = launcher_with(false);
    auto medium = l->compile(policy(TrustLevel::kMedium));
    ASSERT_TRUE(medium.ok()) << medium.status().to_string();
    EXPECT_FALSE(names_memsw((*medium)->missing_features()));
  }
}

}  // namespace
}  // namespace pio::sandbox::testing
