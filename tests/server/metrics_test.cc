// /metrics: who may read it, and that its series stay few and distinct whatever clients send
// (what Prometheus needs to keep scraping it).

#include "metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "server_fixture.h"

namespace pio::server {
namespace {

using ::testing::HasSubstr;

// The series of every sample in Prometheus text: the metric name and its labels, sorted by
// name (label order does not make two series different). Comment lines are skipped.
std::vector<std::string> series_of(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    const size_t space = line.find(' ');
    if (brace == std::string::npos || brace > space) {
      out.push_back(line.substr(0, space));
      continue;
    }
    std::vector<std::string> labels;
    size_t i = brace + 1;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find('=', i);
      std::string label = line.substr(i, eq - i) + "=";
      i = eq + 2;  // past ="
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') label += line[i++];
        label += line[i++];
      }
      ++i;  // past the closing quote
      if (i < line.size() && line[i] == ',') ++i;
      labels.push_back(label);
    }
    std::sort(labels.begin(), labels.end());
    std::string series = line.substr(0, brace) + "{";
    for (const std::string& l : labels) series += l + ",";
    out.push_back(series + "}");
  }
  return out;
}

TEST(MetricsText, SeriesAreReadWithEscapedQuotesAndInAnyLabelOrder) {
  const auto series =
      series_of("# HELP x y\nx{a=\"1\",b=\"q\\\"}\"} 3\nx{b=\"q\\\"}\",a=\"1\"} 4\ny 5\n");
  ASSERT_EQ(series.size(), 3u);
  EXPECT_EQ(series[0], series[1]);
  EXPECT_EQ(series[2], "y");
}

TEST(MetricsText, LabelValuesAreEscapedAsTheFormatDemands) {
  EXPECT_EQ(ServerMetrics::escape_label("we\"ird\\name\nx"), "we\\\"ird\\\\name\\nx");
}

std::vector<std::string> duplicates(const std::vector<std::string>& series) {
  std::map<std::string, int> seen;
  std::vector<std::string> twice;
  for (const std::string& s : series) {
    if (++seen[s] == 2) twice.push_back(s);
  }
  return twice;
}

TEST_F(HttpServerTest, RequestsForModelsThatAreNotServedAddNoSeries) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  start_server();
  ask(post("/v1/completions", R"({"model": "echo", "prompt": "abc"})"));
  ask(post("/v1/completions", R"({"model": "no-such-model", "prompt": "abc"})"));
  const size_t before = body_of(ask(get("/metrics"), "pio_worker_resident_bytes")).size();
  ASSERT_GT(before, 0u);
  std::mt19937_64 random(42);
  for (int i = 0; i < 400; ++i) {
    const std::string model = "model-" + std::to_string(random());
    const std::string endpoint = i % 2 == 0 ? "/v1/completions" : "/v1/chat/completions";
    const std::string body = i % 2 == 0 ? R"({"model": ")" + model + R"(", "prompt": "abc"})"
                                        : chat_body(model, "x", false);
    EXPECT_THAT(ask(post(endpoint, body)), HasSubstr("404 Not Found"));
  }
  const std::string after = body_of(ask(get("/metrics"), "pio_worker_resident_bytes"));
  EXPECT_THAT(after, ::testing::Not(HasSubstr("model-")));
  // The chat endpoint's 404s are one new series set; 400 names were once 7,000 lines.
  EXPECT_LT(after.size(), before + 4096) << after;
  EXPECT_THAT(
      after,
      HasSubstr(
          R"(pio_requests_total{endpoint="/v1/completions",model="",tenant="",status="404"} 201)"));
}

TEST_F(HttpServerTest, MetricsNeedAnAdminKeyOnceAdminKeysAreConfigured) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.tenants = {tenant("a", "key-a", {"echo"})};
  options.admin_keys = {sha256_of("admin-key")};
  start_server(options);
  const std::string anonymous = ask(get("/metrics"));
  EXPECT_THAT(anonymous, HasSubstr("401 Unauthorized"));
  EXPECT_THAT(anonymous, HasSubstr("invalid_api_key"));
  EXPECT_THAT(anonymous, ::testing::Not(HasSubstr("pio_")));
  EXPECT_THAT(ask(with_key(get("/metrics"), "key-a")), HasSubstr("401 Unauthorized"));
  EXPECT_THAT(ask(with_key(get("/metrics"), "admin-key"), "pio_worker_resident_bytes"),
              HasSubstr("200 OK"));
  // The health endpoints stay open to probes.
  EXPECT_THAT(ask(get("/healthz"), "\"ok\""), HasSubstr("200 OK"));
}

TEST_F(HttpServerTest, WithTenantsNoTwoMetricSamplesShareALabelSet) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.tenants = {tenant("a", "key-a", {"echo"}), tenant("b", "key-b", {"echo"})};
  start_server(options);
  for (const char* key : {"key-a", "key-b"}) {
    EXPECT_THAT(ask(with_key(post("/v1/chat/completions", chat_body("echo", "hi", false)), key)),
                HasSubstr("200 OK"));
  }
  const std::string body = body_of(ask(get("/metrics"), "pio_worker_resident_bytes"));
  const auto series = series_of(body);
  EXPECT_THAT(duplicates(series), ::testing::IsEmpty()) << body;
  // Each worker is a series of its own: the plugin's own (serving a) and b's.
  EXPECT_THAT(body, HasSubstr(R"(pio_plugin_ready{plugin="echo",plugin_instance=""} 1)"));
  EXPECT_THAT(body, HasSubstr(R"(pio_plugin_ready{plugin="echo",plugin_instance="b"} 1)"));
}

}  // namespace
}  // namespace pio::server
