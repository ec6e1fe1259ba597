// Low trust against the real kernel: every attempt of a hostile plugin fails with the expected
// errno, or the worker is killed and the kill is reported as what it was.

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <unistd.h>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

class LowTrust : public SandboxTest {
 protected:
  // The attempt fails with `expected` errno and the worker then exits normally.
  void expect_errno(std::vector<std::string> args, int expected) {
    std::string what = args.front();
    ProbeRun run = run_probe(TrustLevel::kLow, std::move(args));
    ASSERT_TRUE(run.spawn_status.ok()) << run.spawn_status.to_string();
    ASSERT_TRUE(run.hello) << what;
    EXPECT_EQ(run.failed_errno(), expected) << what << ": report \"" << run.report << "\"";
    ASSERT_TRUE(run.exit.has_value());
    EXPECT_EQ(run.exit->kind, ExitKind::kExited) << what << ": " << run.exit->to_string();
  }
  // The attempt kills the worker (seccomp KILL_PROCESS) before it can report anything.
  void expect_seccomp_kill(std::vector<std::string> args) {
    std::string what = args.front();
    ProbeRun run = run_probe(TrustLevel::kLow, std::move(args));
    ASSERT_TRUE(run.hello) << what;
    EXPECT_EQ(run.report, "") << what;
    ASSERT_TRUE(run.exit.has_value());
    EXPECT_EQ(run.exit->kind, ExitKind::kSeccompViolation) << what << ": " << run.exit->to_string();
    EXPECT_EQ(run.exit->signal, SIGSYS) << what;
  }
  void expect_ok(std::vector<std::string> args) {
    std::string what = args.front();
    ProbeRun run = run_probe(TrustLevel::kLow, std::move(args));
    ASSERT_TRUE(run.hello) << what;
    EXPECT_EQ(run.report, "ok") << what;
  }
  std::string host_pid() const { return std::to_string(getpid()); }
};

TEST_F(LowTrust, InternetSocketsCannotBeCreated) {
  expect_errno({"socket_inet", std::to_string(tcp_port_)}, EPERM);
  expect_errno({"socket_inet6", std::to_string(tcp_port_)}, EPERM);
}

TEST_F(LowTrust, NetlinkAndUnixSocketsCannotBeCreatedAfterStage2) {
  expect_errno({"socket_netlink"}, EPERM);
  expect_errno({"socket_unix", unix_socket_}, EPERM);
}

TEST_F(LowTrust, FilesOutsideTheRootsCannotBeRead) {
  // Not in the worker's mount tree at all (mount_tree_test.cc shows what stat finds).
  expect_errno({"read_file", "/etc/shadow"}, ENOENT);
  expect_errno({"read_file", host_file_}, ENOENT);
  expect_errno({"read_file", other_model_ + "/secret.bin"}, ENOENT);
  expect_errno({"list_dir", "/home"}, ENOENT);
  // In the tree (its own /proc), so only Landlock stands in the way.
  expect_errno({"read_file", "/proc/1/environ"}, EACCES);
}

TEST_F(LowTrust, NothingOutsideScratchCanBeWritten) {
  // The worker's /tmp is a directory of its read-only root, the plugin dir a read-only bind
  // (and Landlock would refuse both).
  expect_errno({"write_file", "/tmp/pio-sandbox-escape-" + host_pid()}, EROFS);
  expect_errno({"write_file", plugin_dir_ + "/plugin.txt"}, EROFS);
  EXPECT_FALSE(std::filesystem::exists("/tmp/pio-sandbox-escape-" + host_pid()));
}

TEST_F(LowTrust, OwnPluginAndModelDirsCanBeReadAndScratchWritten) {
  expect_ok({"read_file", plugin_dir_ + "/plugin.txt"});
  expect_ok({"list_dir", plugin_dir_});
  expect_ok({"read_file", model_dir_ + "/weights.bin"});
  expect_ok({"write_file", "scratch-output.txt"});
}

TEST_F(LowTrust, ExecveFailsAfterStage2) { expect_errno({"exec_sh"}, EPERM); }

TEST_F(LowTrust, TheHostProcessCannotBeSignalledOrTraced) {
  // The host's pid does not exist in the worker's pid namespace.
  expect_errno({"kill", host_pid()}, ESRCH);
  expect_seccomp_kill({"ptrace", host_pid()});
  expect_seccomp_kill({"process_vm_readv", host_pid(), "4096"});
}

TEST_F(LowTrust, NamespaceAndMountSyscallsKillTheWorker) {
  for (const char* attempt : {"mount", "unshare", "setns", "chroot", "pivot_root"}) {
    expect_seccomp_kill({attempt});
  }
}

TEST_F(LowTrust, KernelAttackSurfaceSyscallsKillTheWorker) {
  for (const char* attempt :
       {"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "keyctl", "add_key"}) {
    expect_seccomp_kill({attempt});
  }
}

TEST_F(LowTrust, TiocstiIsRefusedAlsoWithHighBitsSetInTheRequest) {
  expect_errno({"tiocsti"}, EPERM);
  expect_errno({"tiocsti_high"}, EPERM);
}

TEST_F(LowTrust, NoMemoryTheWorkerCanWriteBecomesExecutable) {
  expect_errno({"memfd_exec"}, EPERM);    // memfd_create is gone after stage 2
  expect_errno({"arena_exec"}, EPERM);    // mprotect(PROT_EXEC) of the shared arena
  expect_errno({"scratch_exec"}, EPERM);  // the scratch tmpfs is noexec
  expect_errno({"anon_wx"}, EPERM);       // writable and executable at once
}

TEST_F(LowTrust, CloneWithNamespaceFlagsIsRefused) { expect_errno({"clone_newnet"}, EPERM); }

TEST_F(LowTrust, SetuidKillsTheWorker) { expect_seccomp_kill({"setuid"}); }

TEST_F(LowTrust, RlimitsCannotBeRaised) { expect_errno({"raise_rlimit"}, EPERM); }

TEST_F(LowTrust, NoDeviceNodeBeyondNullZeroAndRandomCanBeOpened) {
  // /dev/ptmx and /dev/full are world-read-writable on every Linux; the worker's /dev holds
  // neither, nor the GPU nodes of the medium policy (and /dev/kvm) wherever they exist.
  expect_errno({"open_device", "/dev/ptmx"}, ENOENT);
  expect_errno({"open_device", "/dev/full"}, ENOENT);
  for (const char* node :
       {"/dev/kvm", "/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm", "/dev/dri/renderD128"}) {
    if (!std::filesystem::exists(node)) continue;
    expect_errno({"open_device", node}, ENOENT);
  }
  expect_ok({"open_device", "/dev/null"});
  expect_ok({"open_device", "/dev/zero"});
}

TEST_F(LowTrust, WorkerRunsUnprivilegedWithOnlyItsFdsAndAnEmptyEnvironment) {
  ProbeRun uid = run_probe(TrustLevel::kLow, {"getuid"});
  EXPECT_EQ(uid.report, "65534");
  // 0-2 (/dev/null), 3 the channel; the arena (4) and the stage-2 fd (5) are closed by then.
  ProbeRun fds = run_probe(TrustLevel::kLow, {"fds"});
  EXPECT_EQ(fds.report, "0 1 2 3 ");
  ProbeRun env = run_probe(TrustLevel::kLow, {"environ"});
  EXPECT_EQ(env.report, "0");
}

TEST_F(LowTrust, ForkBombIsStoppedByThePidsLimit) {
  ProbeRun run = run_probe(TrustLevel::kLow, {"fork_bomb"});
  ASSERT_TRUE(run.hello);
  EXPECT_EQ(run.failed_errno(), EAGAIN) << run.report;
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->kind, ExitKind::kPidsLimit) << run.exit->to_string();
  EXPECT_GT(run.exit->limits.pids_limit_hits, 0u);
}

TEST_F(LowTrust, MemoryBombIsKilledAndReportedAsMemoryLimit) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.limits.memory_bytes = 64u << 20; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"memory_bomb", "512"}, o);
  ASSERT_TRUE(run.hello);
  EXPECT_EQ(run.report, "");
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->kind, ExitKind::kMemoryLimit) << run.exit->to_string();
  EXPECT_EQ(run.exit->signal, SIGKILL);
  EXPECT_GT(run.exit->limits.oom_kills, 0u);
}

TEST_F(LowTrust, CpuSpinPastItsLimitIsKilledAndReportedAsCpuLimit) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.cpu_seconds = 1; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"cpu_spin"}, o);
  ASSERT_TRUE(run.hello);
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->kind, ExitKind::kCpuLimit) << run.exit->to_string();
  EXPECT_GE(run.exit->cpu_time, std::chrono::milliseconds(750));
}

TEST_F(LowTrust, FilePastTheSizeLimitFailsWithEfbig) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.fsize_bytes = 1u << 20; };
  ProbeRun run = run_probe(TrustLevel::kLow, {"fsize", std::to_string(4u << 20)}, o);
  ASSERT_TRUE(run.hello);
  EXPECT_EQ(run.failed_errno(), EFBIG) << run.report;
}

TEST_F(LowTrust, ScratchIsPrivateAndRemovedWithTheWorker) {
  ProbeRun run = run_probe(TrustLevel::kLow, {"write_file", "left-behind.txt"});
  EXPECT_EQ(run.report, "ok");
  ASSERT_TRUE(run.worker != nullptr);
  // The scratch tmpfs lived in the worker's mount namespace only; its dir is gone too.
  EXPECT_FALSE(std::filesystem::exists(run.worker->scratch_dir()));
}

}  // namespace
}  // namespace pio::sandbox::testing
