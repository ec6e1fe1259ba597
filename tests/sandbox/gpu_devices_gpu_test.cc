// GPU device nodes: medium trust may open them, low trust may not. Needs a machine with the
// NVIDIA driver's nodes; elsewhere the tests skip and say why.

#include <errno.h>

#include <filesystem>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

class GpuDevices : public SandboxTest {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/dev/nvidiactl")) {
      GTEST_SKIP() << "no /dev/nvidiactl: not a GPU machine";
    }
    SandboxTest::SetUp();
  }
  void TearDown() override {
    if (launcher_) SandboxTest::TearDown();
  }
};

TEST_F(GpuDevices, MediumTrustOpensTheGpuNodes) {
  for (const char* node : {"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm"}) {
    if (!std::filesystem::exists(node)) continue;
    ProbeRun run = run_probe(TrustLevel::kMedium, {"open_device", node});
    EXPECT_EQ(run.report, "ok") << node;
  }
}

TEST_F(GpuDevices, LowTrustCannotOpenAnyGpuNode) {
  for (const char* node : {"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm"}) {
    if (!std::filesystem::exists(node)) continue;
    ProbeRun run = run_probe(TrustLevel::kLow, {"open_device", node});
    // Not in the low level's mount tree at all.
    EXPECT_EQ(run.failed_errno(), ENOENT) << node << ": " << run.report;
  }
}

}  // namespace
}  // namespace pio::sandbox::testing
