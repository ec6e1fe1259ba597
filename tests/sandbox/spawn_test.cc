// The spawn sequence itself: a worker starts under each policy, gets exactly its fds, an empty
// environment, an unprivileged identity, and its exit is classified; failures name the step.

#include <sys/wait.h>

#include <filesystem>

#include "sandbox_fixture.h"

namespace pio::sandbox::testing {
namespace {

class Spawn : public SandboxTest {};

TEST_F(Spawn, EveryTrustLevelStartsAWorkerThatSaysHello) {
  for (TrustLevel level :
       {TrustLevel::kLow, TrustLevel::kMedium, TrustLevel::kHigh, TrustLevel::kMaximum}) {
    ProbeRun run = run_probe(level, {"exit", "7"});
    ASSERT_TRUE(run.spawn_status.ok())
        << trust_level_name(level) << ": " << run.spawn_status.to_string();
    EXPECT_TRUE(run.hello) << trust_level_name(level);
    ASSERT_TRUE(run.exit.has_value());
    EXPECT_EQ(run.exit->kind, ExitKind::kExited) << run.exit->to_string();
    EXPECT_EQ(run.exit->exit_code, 7);
  }
}

}  // namespace
}  // namespace pio::sandbox::testing
