// Supervision: restart with backoff, quarantine after N crashes in the window, deactivate drains,
// and the leak check over many crash/restart cycles.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "host_fixture.h"

namespace pio::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

class SupervisionTest : public testing::HostFixture {
 protected:
  void start_segv(const std::string& restart) {
    install_hostile("segv_infer");
    make_host(R"({"instance_name": "sup)" + std::to_string(getpid()) +
              R"(", "plugins": {"hostile_segv_infer": {"restart": )" + restart + "}}}");
    ASSERT_FALSE(HasFailure());
    activate_echo();
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_segv_infer").ok());
    ASSERT_TRUE(host_->activate_plugin("hostile_segv_infer").ok());
  }
  Status crash_once() {
    const float x = 1.0f;
    InferRequest request;
    request.inputs.push_back(
        {"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
    return host_->execute_plugin("hostile_segv_infer", std::move(request)).status();
  }
  // A text request waits for the restarted worker and must be answered by it.
  void expect_served_again() {
    auto r = host_->generate("hostile_segv_infer", "up", {.max_tokens = 5});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->text, "up");
  }
  // Directories below this host's cgroup parents (the workers' cgroups).
  size_t count_worker_cgroups() const {
    size_t n = 0;
    std::error_code ec;
    for (const auto& controller : fs::directory_iterator("/sys/fs/cgroup", ec)) {
      const fs::path parent = controller.path() / ("pio-" + host_->config().instance_name);
      if (!fs::is_directory(parent, ec)) continue;
      for (const auto& child : fs::directory_iterator(parent, ec))
        n += child.is_directory(ec) ? 1 : 0;
    }
    return n;
  }
};

TEST_F(SupervisionTest, ACrashedWorkerRestartsAndServesAgain) {
  start_segv(R"({"max_crashes": 5, "backoff_initial_ms": 20, "backoff_max_ms": 100})");
  ASSERT_FALSE(HasFailure());
  const int pid_before = host_->plugin_status("hostile_segv_infer")->pid;
  EXPECT_EQ(crash_once().code(), ErrorCode::kWorkerCrashed);
  expect_served_again();
  auto status = host_->plugin_status("hostile_segv_infer");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, PluginState::kReady);
  EXPECT_EQ(status->restarts, 1u);
  EXPECT_EQ(status->crashes, 1u);
  EXPECT_NE(status->pid, pid_before);
  EXPECT_THAT(status->last_crash, HasSubstr("signal 11 (SEGV)"));
  expect_echo_answers();
}

TEST_F(SupervisionTest, ARequestWaitingForARestartStillEndsAtItsDeadline) {
  start_segv(R"({"max_crashes": 5, "backoff_initial_ms": 3000, "backoff_max_ms": 3000})");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(crash_once().code(), ErrorCode::kWorkerCrashed);
  auto r = host_->generate("hostile_segv_infer", "late",
                           {.max_tokens = 5, .deadline = std::chrono::milliseconds(200)});
  EXPECT_EQ(r.status().code(), ErrorCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_THAT(r.status().message(),
              HasSubstr("while it waited for the worker to (re)start (state backoff)"));
  expect_echo_answers();
}

TEST_F(SupervisionTest, APluginThatKeepsCrashingIsQuarantinedUntilReactivated) {
  start_segv(
      R"({"max_crashes": 3, "window_ms": 60000, "backoff_initial_ms": 5, "backoff_max_ms": 20})");
  ASSERT_FALSE(HasFailure());
  for (int i = 0; i < 3; ++i) {
    Status s = crash_once();
    EXPECT_EQ(s.code(), ErrorCode::kWorkerCrashed) << i << ": " << s.to_string();
  }
  Status quarantined = crash_once();
  EXPECT_EQ(quarantined.code(), ErrorCode::kFailedPrecondition) << quarantined.to_string();
  EXPECT_THAT(quarantined.message(), HasSubstr("quarantined after 3 crashes"));
  EXPECT_EQ(host_->plugin_status("hostile_segv_infer")->state, PluginState::kQuarantined);
  expect_echo_answers();
  ASSERT_TRUE(host_->deactivate_plugin("hostile_segv_infer").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_segv_infer").ok());
  expect_served_again();
}

TEST_F(SupervisionTest, DeactivateLetsInFlightWorkFinishFirst) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 10}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  std::promise<void> first_chunk;
  bool signalled = false;
  auto generation = std::async(std::launch::async, [&] {
    return host_->generate_stream("echo", "0123456789", {.max_tokens = 10}, [&](const TokenChunk&) {
      if (!signalled) {
        signalled = true;
        first_chunk.set_value();
      }
      return true;
    });
  });
  first_chunk.get_future().wait();
  ASSERT_TRUE(host_->deactivate_plugin("echo").ok());
  auto result = generation.get();
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_EQ(result->text, "0123456789");
  EXPECT_EQ(host_->list_plugins()[0].state, PluginState::kStopped);
}

// Crash/restart cycles leave the host where it started: fds, memfd mappings, worker cgroups,
// child processes, resident memory. One cycle costs a crash, the restart and two requests.
TEST_F(SupervisionTest, ManyCrashRestartCyclesLeakNothing) {
  constexpr int kCycles = PIO_TEST_LEAK_CYCLES;
  start_segv(R"({"max_crashes": 1000000, "backoff_initial_ms": 1, "backoff_max_ms": 1})");
  ASSERT_FALSE(HasFailure());
  // Warm up: the first cycles allocate what the host keeps (policy caches, allocator arenas).
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(crash_once().code(), ErrorCode::kWorkerCrashed);
    expect_served_again();
  }
  const size_t fds = testing::count_open_fds();
  const size_t memfds = testing::count_memfd_mappings();
  const size_t children = testing::count_children();
  const size_t cgroups = count_worker_cgroups();
  const size_t rss = testing::resident_bytes();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCycles; ++i) {
    ASSERT_EQ(crash_once().code(), ErrorCode::kWorkerCrashed) << "cycle " << i;
    expect_served_again();
    ASSERT_FALSE(HasFailure()) << "cycle " << i;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("leak check: %d crash/restart cycles in %.2f s (%.1f ms each)\n", kCycles, seconds,
              1000.0 * seconds / kCycles);
  EXPECT_EQ(testing::count_open_fds(), fds);
  EXPECT_EQ(testing::count_memfd_mappings(), memfds);
  EXPECT_EQ(testing::count_children(), children);
  EXPECT_EQ(count_worker_cgroups(), cgroups);
  const size_t rss_after = testing::resident_bytes();
  EXPECT_LT(rss_after, rss + (2u << 20)) << "RSS grew from " << rss << " to " << rss_after;
  EXPECT_EQ(host_->plugin_status("hostile_segv_infer")->restarts,
            static_cast<uint32_t>(kCycles + 5));
  expect_echo_answers();
}

TEST_F(SupervisionTest, ALibrarySwappedOnDiskAfterActivationIsRefusedAtRestartAndQuarantined) {
  install_hostile("segv_infer");
  make_host(R"({"instance_name": "swap)" + std::to_string(getpid()) +
            R"(", "plugins": {"echo": {"restart": {"max_crashes": 3, "window_ms": 60000,
                "backoff_initial_ms": 5, "backoff_max_ms": 20}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  expect_echo_answers();
  // Another valid plugin library takes the checked one's place, as a rename by whoever can write
  // the plugin dir would put it there.
  const fs::path library = root_ / "plugins" / "echo" / "libecho.so";
  const fs::path swapped = root_ / "plugins" / "echo" / "libecho.so.new";
  fs::copy_file(root_ / "plugins" / "hostile_segv_infer" / "libhostile_segv_infer.so", swapped);
  chmod(swapped.c_str(), 0755);
  fs::rename(swapped, library);
  const pid_t pid = host_->plugin_status("echo")->pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);

  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (host_->plugin_status("echo")->state != PluginState::kQuarantined &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto status = host_->plugin_status("echo");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, PluginState::kQuarantined);
  EXPECT_THAT(status->last_crash, HasSubstr("sha256 mismatch"));
  // The swapped library never ran: no worker of it got as far as saying Hello.
  EXPECT_THAT(status->last_crash, Not(HasSubstr("Hello")));
  EXPECT_EQ(status->crashes, 2u);  // the kill, then the refused restart

  const float x = 1.0f;
  InferRequest request;
  request.inputs.push_back(
      {"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
  Status refused = host_->execute_plugin("echo", std::move(request)).status();
  EXPECT_EQ(refused.code(), ErrorCode::kFailedPrecondition) << refused.to_string();
  EXPECT_THAT(refused.message(), HasSubstr("sha256 mismatch"));
}

}  // namespace
}  // namespace pio::host
