// A worker that dies mid-generation: the request is told why without another process's stderr or
// pid (those are for operators), and a generation of a plugin that can resume continues on the
// restarted worker, so the caller sees one unbroken stream, unless the request crashed its worker
// twice.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "host_fixture.h"

namespace pio::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class StreamResumeTest : public testing::HostFixture {
 protected:
  // Waits (bounded) until `plugin`'s worker is ready and returns its pid.
  int ready_pid(const std::string& plugin) {
    for (int i = 0; i < 1000; ++i) {
      auto status = host_->plugin_status(plugin);
      if (status.ok() && status->state == PluginState::kReady && status->pid > 0)
        return status->pid;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << plugin << " did not become ready";
    return 0;
  }

  // A Host with the hostile plugin `mode` active (and echo beside it).
  void start_hostile(const std::string& mode,
                     const nlohmann::json& settings = nlohmann::json::object()) {
    name_ = "hostile_" + mode;
    install_hostile(mode);
    nlohmann::json extra = {{"plugins", {{name_, settings}}}};
    extra["plugins"][name_]["model_roots"] = {(root_ / "models").string()};
    make_host(extra.dump());
    ASSERT_FALSE(HasFailure());
    activate_echo();
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / name_).ok());
    Status s = host_->activate_plugin(name_);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }

  std::string name_;
};

// The prompt reaches the plugin, which writes it to stderr before it crashes: in a worker shared by
// tenants, that is one tenant's data in the crash report.
constexpr std::string_view kSecret = "tenant-a-secret-7f3k9";

TEST_F(StreamResumeTest, ACrashedRequestIsToldTheReasonButNotTheWorkersStderrOrPid) {
  start_hostile("resume_crash");
  ASSERT_FALSE(HasFailure());
  auto r = host_->generate_stream(name_, std::string("abcdef ") + std::string(kSecret),
                                  {.max_tokens = 100}, [](const TokenChunk&) { return true; });
  ASSERT_FALSE(r.ok());
  const Status& error = r.status();
  EXPECT_EQ(error.code(), ErrorCode::kWorkerCrashed) << error.to_string();
  EXPECT_THAT(error.message(), HasSubstr("plugin \"" + name_ + "\""));
  EXPECT_THAT(error.message(), HasSubstr("signal 11 (SEGV)"));
  EXPECT_THAT(error.message(), Not(HasSubstr(std::string(kSecret))));
  EXPECT_THAT(error.message(), Not(HasSubstr("pid")));
  EXPECT_THAT(error.message(), Not(HasSubstr("last output")));
  // The operator's view keeps everything.
  auto status = host_->plugin_status(name_);
  ASSERT_TRUE(status.ok());
  EXPECT_THAT(status->last_crash, HasSubstr(std::string(kSecret)));
  EXPECT_THAT(status->last_crash, HasSubstr("(pid "));
  EXPECT_THAT(status->last_crash, HasSubstr("signal 11 (SEGV)"));
}

TEST_F(StreamResumeTest, TheHostLogCarriesNoTerminalControlsFromAWorkersStderr) {
  start_hostile("resume_crash");
  ASSERT_FALSE(HasFailure());
  ::testing::internal::CaptureStderr();
  // Sets the terminal's title and clears the screen, if printed raw.
  auto r = host_->generate(name_, "abcdef \x1b]0;pwned\x07\x1b[2J", {.max_tokens = 100});
  // Both crashes are reported by the time the request has its answer.
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(log, HasSubstr("pio host: plugin \"" + name_ + "\""));
  EXPECT_THAT(log, HasSubstr("pwned"));
  EXPECT_EQ(log.find('\x1b'), std::string::npos);
  EXPECT_EQ(log.find('\x07'), std::string::npos);
}

TEST_F(StreamResumeTest, AQuarantinedPluginsRefusalCarriesTheReasonButNotTheWorkersStderr) {
  start_hostile("resume_crash", {{"restart", {{"max_crashes", 1}, {"window_ms", 60000}}}});
  ASSERT_FALSE(HasFailure());
  auto crashed =
      host_->generate(name_, std::string("abcdef ") + std::string(kSecret), {.max_tokens = 100});
  ASSERT_FALSE(crashed.ok());
  EXPECT_EQ(crashed.status().code(), ErrorCode::kWorkerCrashed) << crashed.status().to_string();
  EXPECT_THAT(crashed.status().message(), Not(HasSubstr(std::string(kSecret))));
  auto refused = host_->generate(name_, "abc", {.max_tokens = 3});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition)
      << refused.status().to_string();
  EXPECT_THAT(refused.status().message(), HasSubstr("quarantined"));
  EXPECT_THAT(refused.status().message(), HasSubstr("signal 11 (SEGV)"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr(std::string(kSecret))));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("pid")));
  EXPECT_THAT(host_->plugin_status(name_)->last_crash, HasSubstr(std::string(kSecret)));
}

TEST_F(StreamResumeTest, ARequestThatCrashesItsWorkerTwiceEndsWithTheCrash) {
  start_hostile("resume_crash");
  ASSERT_FALSE(HasFailure());
  std::string seen;
  auto r = host_->generate_stream(name_, "abcdef", {.max_tokens = 100}, [&](const TokenChunk& c) {
    seen += c.text;
    return true;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kWorkerCrashed) << r.status().to_string();
  // The first worker sent three characters; the second, resumed after them, died at once.
  EXPECT_EQ(seen, "abc");
  auto status = host_->plugin_status(name_);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->crashes, 2u);
  EXPECT_EQ(status->resumed, 1u);
  expect_echo_answers();
}

TEST_F(StreamResumeTest, ANonStreamingGenerationWhoseWorkerIsKilledIsAnsweredInFull) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 5}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  const int pid = ready_pid("echo");
  ASSERT_GT(pid, 0);
  const std::string prompt(40, 'x');
  // The generation takes at least 39 delays of 5 ms: the kill comes while it runs (or while its
  // request is on the way to the worker), never after it ended.
  std::thread killer([pid] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::kill(pid, SIGKILL);
  });
  auto r = host_->generate("echo", prompt, {.max_tokens = 100});
  killer.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->text, prompt);
  EXPECT_EQ(r->completion_tokens, 40u);
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);
  EXPECT_EQ(host_->plugin_status("echo")->resumed, 1u);
}

// Echo streams its prompt back one character per chunk: the uncrashed text of every stream is
// known.
TEST_F(StreamResumeTest, FiftyStreamsWhoseWorkerIsKilledAtRandomPointsEachEqualTheirUncrashedText) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 1}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());

  std::mt19937 random(20261202);
  // Multi-byte characters too: a resumed stream must not split or repeat one.
  const std::vector<std::string> alphabet = {"a", "b", "c", " ", "é", "€", "日", "😀", "z", "\n"};
  constexpr int kStreams = 50;
  for (int n = 0; n < kStreams; ++n) {
    SCOPED_TRACE("stream " + std::to_string(n));
    const int length = std::uniform_int_distribution<int>(12, 40)(random);
    std::string prompt;
    for (int i = 0; i < length; ++i) {
      prompt += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(random)];
    }
    // Some streams are cut by max_tokens: their finish reason must survive the crash too.
    const bool cut = n % 5 == 4;
    const auto max_tokens = static_cast<uint32_t>(cut ? length / 2 + 1 : length + 10);
    const size_t expected_chars = cut ? max_tokens : static_cast<size_t>(length);
    std::string expected;
    {
      size_t chars = 0;
      for (size_t i = 0; i < prompt.size() && chars < expected_chars; ++chars) {
        size_t end = i + 1;
        while (end < prompt.size() && (static_cast<unsigned char>(prompt[end]) & 0xC0) == 0x80)
          ++end;
        expected += prompt.substr(i, end - i);
        i = end;
      }
    }

    const int pid = ready_pid("echo");
    ASSERT_GT(pid, 0);
    // Half the streams lose their worker after a random number of chunks (on the Host's loop,
    // between two chunks), half after a random delay (anywhere, also inside a chunk's send).
    const bool by_chunks = n % 2 == 0;
    const int kill_after_chunks =
        std::uniform_int_distribution<int>(0, static_cast<int>(expected_chars) - 1)(random);
    const auto kill_after =
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 30'000)(random));
    std::thread killer;
    if (!by_chunks) {
      killer = std::thread([pid, kill_after] {
        std::this_thread::sleep_for(kill_after);
        ::kill(pid, SIGKILL);
      });
    }
    std::string streamed;
    size_t chunks = 0;
    auto r = host_->generate_stream(
        "echo", prompt, {.max_tokens = max_tokens}, [&](const TokenChunk& c) {
          streamed += c.text;
          if (by_chunks && static_cast<int>(chunks) == kill_after_chunks) ::kill(pid, SIGKILL);
          ++chunks;
          return true;
        });
    if (killer.joinable()) killer.join();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(streamed, expected);
    EXPECT_EQ(r->text, expected);
    EXPECT_EQ(r->token_ids.size(), expected_chars);
    EXPECT_EQ(r->completion_tokens, expected_chars);
    EXPECT_EQ(r->finish_reason, cut ? FinishReason::kLength : FinishReason::kStop);
    // A delay may have fallen after the stream's end: the next stream starts once the Host has
    // seen this kill, so that it gets its own.
    for (int i = 0;
         i < 1000 && host_->plugin_status("echo")->crashes < static_cast<uint32_t>(n + 1); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  auto status = host_->plugin_status("echo");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->crashes, static_cast<uint32_t>(kStreams));
  // Every stream killed between two of its chunks was interrupted (a delay may fall after the end).
  EXPECT_GE(status->resumed, 1u);
  std::printf("resumed %u of %d streams whose worker was killed\n", status->resumed, kStreams);
}

}  // namespace
}  // namespace pio::host
