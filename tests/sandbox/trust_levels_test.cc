// Maximum, medium and high trust against the real kernel: what each level grants works, and
// what it still withholds is refused.

#include <errno.h>
#include <unistd.h>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

class MaximumTrust : public SandboxTest {
 protected:
  void expect_ok(std::vector<std::string> args) {
    std::string what = args.front();
    ProbeRun run = run_probe(TrustLevel::kMaximum, std::move(args));
    ASSERT_TRUE(run.spawn_status.ok()) << run.spawn_status.to_string();
    ASSERT_TRUE(run.hello) << what;
    EXPECT_EQ(run.report, "ok") << what;
  }
};

TEST_F(MaximumTrust, SocketsOfEveryFamilyOpenAndConnectToTheTestListener) {
  expect_ok({"socket_inet", std::to_string(tcp_port_)});
  expect_ok({"socket_inet6", std::to_string(tcp_port_)});
  expect_ok({"socket_netlink"});
  expect_ok({"socket_unix", unix_socket_});
}

TEST_F(MaximumTrust, OwnDirsReadAndScratchWritten) {
  expect_ok({"read_file", plugin_dir_ + "/plugin.txt"});
  expect_ok({"read_file", model_dir_ + "/weights.bin"});
  expect_ok({"write_file", "scratch-output.txt"});
}

TEST_F(MaximumTrust, NoSyscallFilteringExecveWorksAfterStage2) {
  ProbeRun run = run_probe(TrustLevel::kMaximum, {"exec_sh"});
  ASSERT_TRUE(run.hello);
  // /bin/sh replaced the probe and exited 0 without a report.
  EXPECT_EQ(run.report, "");
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->kind, ExitKind::kExited);
  EXPECT_EQ(run.exit->exit_code, 0);
  expect_ok({"memfd_exec"});
  expect_ok({"arena_exec"});
}

TEST_F(MaximumTrust, RunsAsTheHostUserWithOnlyItsFdsAndAnEmptyEnvironment) {
  ProbeRun uid = run_probe(TrustLevel::kMaximum, {"getuid"});
  EXPECT_EQ(uid.report, std::to_string(getuid()));
  ProbeRun fds = run_probe(TrustLevel::kMaximum, {"fds"});
  EXPECT_EQ(fds.report, "0 1 2 3 ");
  ProbeRun env = run_probe(TrustLevel::kMaximum, {"environ"});
  EXPECT_EQ(env.report, "0");
}

TEST_F(MaximumTrust, ChildrenLeftBehindAreKilledWithTheCgroup) {
  // Without a pid namespace, the fork bomb's children outlive the worker; reaping the worker
  // must still leave no process and no cgroup behind (checked in TearDown).
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.limits.pids_max = 8; };
  ProbeRun run = run_probe(TrustLevel::kMaximum, {"fork_bomb"}, o);
  EXPECT_EQ(run.failed_errno(), EAGAIN) << run.report;
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->kind, ExitKind::kPidsLimit);
}

class MediumTrust : public SandboxTest {};

TEST_F(MediumTrust, JitMayMakeMemoryExecutableButNeverWritableAndExecutable) {
  ProbeRun jit = run_probe(TrustLevel::kMedium, {"arena_exec"});
  EXPECT_EQ(jit.report, "ok");
  ProbeRun wx = run_probe(TrustLevel::kMedium, {"anon_wx"});
  EXPECT_EQ(wx.failed_errno(), EPERM) << wx.report;
}

TEST_F(MediumTrust, NetworkStaysClosed) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.network_requested = true; };
  ProbeRun run = run_probe(TrustLevel::kMedium, {"socket_inet", std::to_string(tcp_port_)}, o);
  EXPECT_EQ(run.failed_errno(), EPERM) << run.report;
  ASSERT_NE(run.worker, nullptr);
  EXPECT_FALSE(run.worker->network_granted());
}

class HighTrust : public SandboxTest {};

TEST_F(HighTrust, NetworkOnlyWhenTheManifestAsksForIt) {
  ProbeRun closed = run_probe(TrustLevel::kHigh, {"socket_inet", std::to_string(tcp_port_)});
  EXPECT_EQ(closed.failed_errno(), EPERM) << closed.report;

  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) {
    r.network_requested = true;
    r.host_network = true;
  };
  ProbeRun open = run_probe(TrustLevel::kHigh, {"socket_inet", std::to_string(tcp_port_)}, o);
  EXPECT_EQ(open.report, "ok");
  ASSERT_NE(open.worker, nullptr);
  EXPECT_TRUE(open.worker->network_granted());
  // Granted network does not widen the filesystem or the exec ban.
  ProbeRun exec = run_probe(TrustLevel::kHigh, {"exec_sh"}, o);
  EXPECT_EQ(exec.failed_errno(), EPERM) << exec.report;
  ProbeRun host_file = run_probe(TrustLevel::kHigh, {"read_file", host_file_}, o);
  EXPECT_EQ(host_file.failed_errno(), ENOENT) << host_file.report;
}

TEST_F(HighTrust, GrantedNetworkNeverReachesAHostUnixSocket) {
  // Landlock up to ABI 7 does not mediate connect() to a pathname socket: only seccomp keeps the
  // worker from the test's listening socket (and a user's agent socket, a database's).
  for (bool host_network : {false, true}) {
    ProbeOptions o;
    o.edit_request = [host_network](SpawnRequest& r) {
      r.network_requested = true;
      r.host_network = host_network;
    };
    ProbeRun unix_socket = run_probe(TrustLevel::kHigh, {"socket_unix", unix_socket_}, o);
    EXPECT_EQ(unix_socket.report, "fail socket " + std::to_string(EPERM)) << host_network;
    ProbeRun netlink = run_probe(TrustLevel::kHigh, {"socket_netlink"}, o);
    EXPECT_EQ(netlink.report, "fail socket " + std::to_string(EPERM)) << host_network;
  }
}

TEST_F(HighTrust, GrantedNetworkIsANamespaceOfItsOwnUnlessTheOperatorGivesTheHosts) {
  ProbeOptions o;
  o.edit_request = [](SpawnRequest& r) { r.network_requested = true; };
  ProbeRun own = run_probe(TrustLevel::kHigh, {"socket_inet", std::to_string(tcp_port_)}, o);
  ASSERT_NE(own.worker, nullptr);
  EXPECT_TRUE(own.worker->network_granted());
  // The Internet socket is created; the host's 127.0.0.1 listener is not there to reach.
  EXPECT_TRUE(own.report.starts_with("fail connect ")) << own.report;
}

}  // namespace
}  // namespace pio::sandbox::testing
