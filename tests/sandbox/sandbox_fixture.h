#pragma once
// SandboxTest: a fixture that runs sandbox_probe under a real policy and collects what happened
// (the Hello, the probe's report, the classified exit). After every test it asserts that the
// host is left clean: no cgroup dirs, no children or zombies, no fds beyond those it started with.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pio/sandbox/launcher.h"
#include "pio/sandbox/policy.h"

namespace pio::sandbox::testing {

struct ProbeRun {
  bool hello = false;  // a verified Hello arrived
  std::string report;  // "ok", "fail <what> <errno>", or "" when it died first
  std::optional<WorkerExit> exit;
  Status spawn_status;
  std::shared_ptr<Worker> worker;

  // "fail <what> <errno>" -> errno, else -1.
  int failed_errno() const;
  bool succeeded() const { return report == "ok"; }
};

struct ProbeOptions {
  std::function<void(Policy&)> edit_policy;
  std::function<void(SpawnRequest&)> edit_request;
  bool wait_for_exit = true;
};

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Compiles the shipped policy of `level` (edited) and runs the probe with `args`.
  ProbeRun run_probe(TrustLevel level, std::vector<std::string> args, ProbeOptions options = {});
  // Runs the io_context until `worker` exited (or the timeout passed: then kills it and fails).
  void wait_for_exit(const std::shared_ptr<Worker>& worker);

  WorkerLauncher& launcher() { return *launcher_; }
  Policy policy(TrustLevel level) const;

  // Created after the fd census and destroyed before the check: its reactor owns fds.
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<WorkerLauncher> launcher_;
  std::string root_;         // temp dir of this test, 0755
  std::string plugin_dir_;   // holds plugin.txt
  std::string model_dir_;    // holds weights.bin
  std::string other_model_;  // another plugin's model dir, holds secret.bin
  std::string host_file_;    // a host file outside every root
  std::string unix_socket_;  // a listening Unix socket
  // A copy of sandbox_probe in root_: the build dir may not be reachable for uid 65534.
  std::string probe_path_;
  int tcp_port_ = 0;  // a TCP listener on 127.0.0.1

 private:
  int tcp_listener_ = -1;
  int unix_listener_ = -1;
  std::vector<std::string> fds_before_;
  std::vector<std::string> cgroup_parents_;
};

// The open fds of this process (names in /proc/self/fd).
std::vector<std::string> open_fds();

}  // namespace pio::sandbox::testing
