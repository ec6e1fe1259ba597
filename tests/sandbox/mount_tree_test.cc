// The worker's mount tree against the real kernel: at the levels with a mount namespace the
// worker's root holds only what the policy's filesystem section grants, its /proc is its own pid
// namespace's, and Landlock still decides inside what is there. stat, access and readlink are
// what Landlock does not mediate, so they show what the tree hides.

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

class MountTreeTest : public SandboxTest {
 protected:
  ProbeRun probe(TrustLevel level, std::vector<std::string> args) {
    ProbeRun run = run_probe(level, std::move(args));
    EXPECT_TRUE(run.spawn_status.ok()) << run.spawn_status.to_string();
    EXPECT_TRUE(run.hello);
    return run;
  }
  int stat_errno(TrustLevel level, const std::string& path) {
    ProbeRun run = probe(level, {"stat", path});
    return run.succeeded() ? 0 : run.failed_errno();
  }
};

TEST_F(MountTreeTest, AtLowTheHostsFilesOutsideThePolicyDoNotExistForTheWorker) {
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/etc/shadow"), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/etc/passwd"), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/home"), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/root"), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, host_file_), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, other_model_), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, unix_socket_), ENOENT);
  // The host's /tmp: only the path down to this test's own dirs is there, nothing beside it.
  const std::string host_tmp_file = "/tmp/pio-mount-tree-" + std::to_string(getpid());
  std::ofstream(host_tmp_file) << "host";
  EXPECT_EQ(stat_errno(TrustLevel::kLow, host_tmp_file), ENOENT);
  unlink(host_tmp_file.c_str());
}

TEST_F(MountTreeTest, AtLowProcShowsOnlyTheWorkersOwnPidNamespace) {
  // The test process (the host) has a pid the worker's namespace never reaches this early.
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/proc/" + std::to_string(getpid())), ENOENT);
  EXPECT_EQ(stat_errno(TrustLevel::kLow, "/proc/1"), 0);  // the worker itself
  ProbeRun link = probe(TrustLevel::kLow, {"readlink", "/proc/self"});
  EXPECT_EQ(link.report, "ok");
  // /proc/cpuinfo is granted on the worker's own /proc (a child-side Landlock rule).
  ProbeRun cpuinfo = probe(TrustLevel::kLow, {"read_file", "/proc/cpuinfo"});
  EXPECT_EQ(cpuinfo.report, "ok");
}

TEST_F(MountTreeTest, AtLowWhatThePolicyGrantsIsThereAndLandlockStillDecides) {
  EXPECT_EQ(probe(TrustLevel::kLow, {"read_file", plugin_dir_ + "/plugin.txt"}).report, "ok");
  EXPECT_EQ(probe(TrustLevel::kLow, {"read_file", model_dir_ + "/weights.bin"}).report, "ok");
  EXPECT_EQ(probe(TrustLevel::kLow, {"write_file", "scratch-output.txt"}).report, "ok");
  EXPECT_EQ(probe(TrustLevel::kLow, {"read_file", "/etc/ld.so.cache"}).report, "ok");
  EXPECT_EQ(probe(TrustLevel::kLow, {"open_device", "/dev/null"}).report, "ok");
  // In the tree but not granted by Landlock: the root dir and the rest of its own /proc.
  EXPECT_EQ(probe(TrustLevel::kLow, {"list_dir", "/"}).failed_errno(), EACCES);
  EXPECT_EQ(probe(TrustLevel::kLow, {"read_file", "/proc/self/environ"}).failed_errno(), EACCES);
  // Granted paths are bound read-only: even without Landlock nothing could be written there.
  EXPECT_EQ(probe(TrustLevel::kLow, {"write_file", plugin_dir_ + "/new.txt"}).failed_errno(),
            EROFS);
}

TEST_F(MountTreeTest, MaximumKeepsTheHostsTree) {
  // No mount namespace at maximum: the operator's own code sees the machine as it is.
  EXPECT_EQ(stat_errno(TrustLevel::kMaximum, "/etc/passwd"), 0);
}

}  // namespace
}  // namespace pio::sandbox::testing
