// The Host with echo under the real low-trust sandbox: the seeds' verbs end to end.

#include "pio/host/host.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "host_fixture.h"

namespace pio::host {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class HostTest : public testing::HostFixture {};

TEST_F(HostTest, EchoAnswersInferExecuteAndGenerateThroughTheSandbox) {
  make_host();
  ASSERT_FALSE(HasFailure());
  DiscoveryReport report = host_->discover_and_load_plugins();
  EXPECT_THAT(report.loaded, ::testing::ElementsAre("echo"));
  ASSERT_TRUE(host_->activate_plugin("echo").ok());
  expect_echo_answers();

  // A 1 MiB U8 tensor comes back byte-reversed.
  std::vector<uint8_t> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  InferRequest request;
  request.inputs.push_back(
      {"big", wire::DType::U8, {1 << 20}, std::as_bytes(std::span<const uint8_t>(big))});
  auto out = host_->execute_plugin("echo", std::move(request));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const auto* y = out->find("big");
  ASSERT_NE(y, nullptr);
  ASSERT_EQ(y->length, big.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(y->data);
  EXPECT_EQ(bytes[0], big.back());
  EXPECT_EQ(bytes[big.size() - 1], big.front());
  out->release();

  InferRequest command;
  command.command = "reverse";
  command.params_json = R"({"text": "abc"})";
  auto reversed = host_->execute_plugin("echo", std::move(command));
  ASSERT_TRUE(reversed.ok()) << reversed.status().to_string();
  EXPECT_EQ(nlohmann::json::parse(reversed->json())["text"], "cba");

  auto text = host_->generate("echo", "hello", {.max_tokens = 100});
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ(text->text, "hello");
  EXPECT_EQ(text->finish_reason, FinishReason::kStop);

  std::vector<std::string> pieces;
  auto streamed =
      host_->generate_stream("echo", "stream", {.max_tokens = 3}, [&](const TokenChunk& chunk) {
        pieces.push_back(chunk.text);
        return true;
      });
  ASSERT_TRUE(streamed.ok()) << streamed.status().to_string();
  EXPECT_THAT(pieces, ::testing::ElementsAre("s", "t", "r"));
  EXPECT_EQ(streamed->finish_reason, FinishReason::kLength);

  auto chat =
      host_->chat("echo", R"([{"role": "user", "content": "hi there"}])", {.max_tokens = 100});
  ASSERT_TRUE(chat.ok()) << chat.status().to_string();
  EXPECT_EQ(chat->text, "hi there");

  auto listed = host_->list_plugins();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, PluginState::kReady);
  EXPECT_GT(listed[0].pid, 0);

  ASSERT_TRUE(host_->deactivate_plugin("echo").ok());
  auto after = host_->execute_plugin("echo", InferRequest{});
  EXPECT_EQ(after.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(after.status().message(), HasSubstr("plugin \"echo\" is not active"));
}

TEST_F(HostTest, AStreamCancelledMidwayEndsCancelledAndThePluginKeepsServing) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 20}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  int seen = 0;
  auto result = host_->generate_stream("echo", std::string(200, 'a'), {.max_tokens = 200},
                                       [&](const TokenChunk&) { return ++seen < 3; });
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_EQ(result->finish_reason, FinishReason::kCancelled);
  EXPECT_LT(result->text.size(), 200u);
  expect_echo_answers();
}

TEST_F(HostTest, ManyCallerThreadsShareOneWorker) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = host_->generate("echo", "xyz", {.max_tokens = 10});
        if (r.ok() && r->text == "xyz") ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 100);
}

TEST_F(HostTest, ModelPathsOutsideTheRootsAreRefusedBeforeAnyWorkerStarts) {
  make_host();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "echo").ok());
  const std::vector<std::string> bad = {
      "../../etc/passwd", "/etc/passwd", (root_ / "models" / "echo" / "escape").string(),
      "/proc/self/root/etc/passwd", (root_ / "models" / ".." / "outside" / "secret").string()};
  for (const auto& path : bad) {
    Status s = host_->activate_plugin("echo", {.model_path = path});
    EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied) << path << ": " << s.to_string();
    EXPECT_THAT(s.message(), HasSubstr("plugin \"echo\"")) << path;
  }
  EXPECT_EQ(host_->list_plugins()[0].state, PluginState::kStopped);
  Status good =
      host_->activate_plugin("echo", {.model_path = (root_ / "models" / "echo").string()});
  ASSERT_TRUE(good.ok()) << good.to_string();
  InferRequest info;
  info.command = "pio.get_model_info";
  auto answer = host_->execute_plugin("echo", std::move(info));
  ASSERT_TRUE(answer.ok()) << answer.status().to_string();
  EXPECT_EQ(nlohmann::json::parse(answer->json())["model_path"],
            fs::canonical(root_ / "models" / "echo").string());
}

TEST_F(HostTest, AnInstanceIsASecondWorkerOfThePluginThatGoesWithIt) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  Status s = host_->activate_instance("echo", "tenant-a");
  ASSERT_TRUE(s.ok()) << s.to_string();
  auto text = host_->generate("echo@tenant-a", "mine", {.max_tokens = 10});
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ(text->text, "mine");
  auto base = host_->plugin_status("echo");
  auto instance = host_->plugin_status("echo@tenant-a");
  ASSERT_TRUE(base.ok() && instance.ok());
  EXPECT_NE(base->pid, instance->pid);  // its own process
  EXPECT_EQ(instance->instance, "tenant-a");
  const auto listed = host_->list_plugins();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].name, "echo");
  EXPECT_EQ(listed[1].instance, "tenant-a");
  // Killing the instance's worker leaves the plugin's own worker alone.
  ::kill(instance->pid, SIGKILL);
  expect_echo_answers();
  EXPECT_EQ(host_->activate_instance("echo", "tenant-a").code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(host_->activate_instance("echo", "bad/name").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(host_->activate_instance("nope", "x").code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(host_->deactivate_plugin("echo").ok());
  EXPECT_FALSE(host_->plugin_status("echo@tenant-a").ok());
  EXPECT_EQ(host_->list_plugins().size(), 1u);
}

TEST_F(HostTest, ActivatingTwiceOrAnUnknownPluginSaysWhatToDo) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  Status twice = host_->activate_plugin("echo");
  EXPECT_EQ(twice.code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(twice.message(), HasSubstr("deactivate_plugin first"));
  Status unknown = host_->activate_plugin("nope");
  EXPECT_EQ(unknown.code(), ErrorCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("discover_and_load_plugins"));
}

TEST_F(HostTest, AWorkerThatCannotBeStartedFailsTheActivationNamingTheStep) {
  const fs::path fake = root_ / "not-a-worker";
  std::ofstream(fake) << "not an executable";
  chmod(fake.c_str(), 0755);
  make_host(R"({"worker_path": ")" + fake.string() + R"("})");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "echo").ok());
  Status s = host_->activate_plugin("echo");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code(), ErrorCode::kWorkerCrashed) << s.to_string();
  EXPECT_THAT(s.message(), HasSubstr("plugin \"echo\"")) << s.to_string();
  EXPECT_THAT(s.message(), HasSubstr("exec")) << s.to_string();
  EXPECT_EQ(host_->list_plugins()[0].state, PluginState::kStopped);
}

// Seed-style code: one process-wide Host found through get_plugin_manager(), plugin folders from
// $PIO_PLUGIN_PATH, the worker and policies of this build tree, the host's own cgroup.
TEST_F(HostTest, GetPluginManagerServesSeedStyleCode) {
  ASSERT_EQ(setenv("PIO_PLUGIN_PATH", (root_ / "plugins").c_str(), 1), 0);
  Host& pm = get_plugin_manager();
  EXPECT_EQ(&pm, &get_plugin_manager());
  DiscoveryReport report = pm.discover_and_load_plugins();
  EXPECT_THAT(report.loaded, ::testing::Contains("echo"));
  Status activated = pm.activate_plugin("echo");
  ASSERT_TRUE(activated.ok()) << activated.to_string();
  auto text = pm.generate("echo", "seed", {.max_tokens = 10});
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ(text->text, "seed");
  ASSERT_TRUE(pm.deactivate_plugin("echo").ok());
}

}  // namespace
}  // namespace pio::host
