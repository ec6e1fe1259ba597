// pio doctor, run as a child process (pio_cli_fixture.h). The machines the tests run on give the
// low-trust sandbox in full (tests/host needs it too), so doctor passes here.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "pio_cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using ::pio::cli_test::PioCli;
using ::pio::cli_test::PioRun;
using ::testing::HasSubstr;

TEST_F(PioCli, DoctorPassesOnThisMachineAndSaysSo) {
  PioRun run = pio(with(host_args(), {"doctor"}));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("seccomp"));
  EXPECT_THAT(run.out, HasSubstr("landlock"));
  EXPECT_THAT(run.out, HasSubstr("cgroup"));
  EXPECT_THAT(run.out, HasSubstr("ok: every trust level the config uses can run"));
}

TEST_F(PioCli, DoctorJsonNamesSeccompLandlockTheCgroupVersionAndEveryTrustLevel) {
  PioRun run = pio(with(host_args(), {"doctor", "--json"}));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const auto doc = nlohmann::json::parse(run.out);
  EXPECT_TRUE(doc["seccomp"].is_boolean());
  EXPECT_TRUE(doc["landlock"]["abi"].is_number_integer());
  EXPECT_TRUE(doc["cgroup"]["version"] == 1 || doc["cgroup"]["version"] == 2) << doc["cgroup"];
  for (const char* controller : {"memory", "pids", "cpu"}) {
    EXPECT_TRUE(doc["cgroup"]["controllers"][controller].is_boolean()) << controller;
  }
  EXPECT_TRUE(doc["gpu_devices"].is_array());
  EXPECT_EQ(doc["worker"]["found"], true);
  EXPECT_EQ(doc["policy_dir"]["found"], true);
  EXPECT_EQ(doc["plugins"], nlohmann::json::array({"echo"}));
  ASSERT_EQ(doc["trust_levels"].size(), 4u);
  EXPECT_EQ(doc["trust_levels"][0]["level"], "low");
  EXPECT_EQ(doc["trust_levels"][0]["used"], true);
  EXPECT_EQ(doc["trust_levels"][0]["on_missing_kernel_feature"], "fail");
  EXPECT_EQ(doc["trust_levels"][0]["verdict"], "full");
  EXPECT_EQ(doc["ok"], true);
}

TEST_F(PioCli, DoctorWithAPolicyDirLackingTheUsedLevelExitsTwoSayingWhatToDo) {
  const fs::path empty = root_ / "no-policies";
  fs::create_directories(empty);
  PioRun run = pio({"doctor", "--policy-dir", empty.string()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.out, HasSubstr("NOT OK"));
  EXPECT_THAT(run.err, HasSubstr("pio doctor: failed_precondition: trust level low"));
  EXPECT_THAT(run.err, HasSubstr("--policy-dir"));
}

TEST_F(PioCli, DoctorWithAnUnknownOptionExitsOne) {
  PioRun run = pio({"doctor", "--no-such-option"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("--no-such-option"));
}

}  // namespace
