#include "pio/host/host_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pio::host {
namespace {

using ::testing::HasSubstr;

TEST(HostConfig, PluginSettingsAreReadOverTheDefaults) {
  auto config = parse_host_config(R"({
    "defaults": {"trust_level": "medium", "request_deadline_ms": 1234,
                 "restart": {"max_crashes": 3, "window_ms": 1000, "backoff_initial_ms": 10, "backoff_max_ms": 80}},
    "plugins": {"echo": {"trust_level": "low", "model_roots": ["/srv/models"], "limits": {"memory_mb": 128}}}
  })",
                                  "c.json");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  const PluginSettings& echo = config->settings_for("echo");
  EXPECT_EQ(echo.trust_level, sandbox::TrustLevel::kLow);
  EXPECT_EQ(echo.request_deadline.count(), 1234);
  EXPECT_EQ(echo.restart.max_crashes, 3u);
  EXPECT_EQ(*echo.limits.memory_mb, 128u);
  ASSERT_EQ(echo.model_roots.size(), 1u);
  EXPECT_EQ(config->settings_for("other").trust_level, sandbox::TrustLevel::kMedium);
}

TEST(HostConfig, TheHostsNetworkIsGivenOnlyWhereTheOperatorSaysSo) {
  auto config = parse_host_config(R"({
    "defaults": {"trust_level": "high"},
    "plugins": {"fetcher": {"trust_level": "high", "host_network": true}}
  })",
                                  "c.json");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_TRUE(config->settings_for("fetcher").host_network);
  EXPECT_FALSE(config->settings_for("other").host_network);
  auto wrong = parse_host_config(R"({"defaults": {"host_network": "yes"}})", "c.json");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("defaults.host_network"));
}

TEST(HostConfig, MistakesAreRefusedNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"defaults": {"trust_level": "root"}})", "defaults.trust_level"},
      {R"({"plugins": {"echo": {"model_roots": ["relative"]}}})", "plugins.echo.model_roots[0]"},
      {R"({"plugins": {"echo": {"limits": {"memory_gb": 1}}}})", "plugins.echo.limits.memory_gb"},
      {R"({"defaults": {"restart": {"backoff_initial_ms": 100, "backoff_max_ms": 10}}})",
       "defaults.restart.backoff_max_ms"},
      {R"({"worker_path": "pio-worker"})", "worker_path"},
      {R"({"plugin_dir": []})", "plugin_dir"},
  };
  for (const auto& [text, field] : cases) {
    auto config = parse_host_config(text, "c.json");
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_THAT(config.status().message(), HasSubstr("c.json: field \"" + field + "\"")) << text;
  }
}

}  // namespace
}  // namespace pio::host
