// What the server answers when a worker's strings are not UTF-8: the admin API's plugin list
// (a crash report is the worker's stderr) and generated text both reach the client, with U+FFFD
// for the bad bytes, and `pio serve` keeps serving.

#include "admin_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server_fixture.h"

namespace pio::server {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD in UTF-8

TEST(AdminApi, APluginListHoldingBytesThatAreNotUtf8IsWrittenWithReplacementCharacters) {
  host::PluginStatus crashed;
  crashed.name = "hostile\xff";
  crashed.instance = "a";
  crashed.active = true;
  crashed.crashes = 1;
  crashed.last_crash = "killed by signal 11; stderr: \xff\xfe bad \xc3\x28 cut \xe2\x82 lone \x80";
  std::string body;
  ASSERT_NO_THROW(body = plugins_list_body({crashed}, host::HostConfig{}));
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << body;
  const std::string last_crash = parsed["plugins"][0]["last_crash"].get<std::string>();
  EXPECT_THAT(last_crash, HasSubstr("killed by signal 11; stderr: "));
  EXPECT_THAT(last_crash, HasSubstr(std::string(kReplacement) + " bad "));
  EXPECT_EQ(parsed["plugins"][0]["crashes"], 1);
}

TEST(AdminApi, RefusesWithoutItsKeyAndNamesWhatIsWrong) {
  const std::vector<KeyHash> keys = {sha256_of("admin-key")};
  auto load = [](Host&, const std::string&, host::ActivateOptions) { return ok_status(); };
  auto error_of = [&](AdminRequest r, const std::vector<KeyHash>& k) {
    auto call = route_admin(r, k, load);
    return std::holds_alternative<ApiError>(call) ? std::get<ApiError>(call).http_status : 200;
  };
  EXPECT_EQ(error_of({"/admin/plugins", "GET", "", ""}, {}), 403);
  EXPECT_EQ(error_of({"/admin/plugins", "GET", "Bearer nope", ""}, keys), 401);
  EXPECT_EQ(error_of({"/admin/plugins", "GET", "Bearer admin-key", ""}, keys), 200);
  EXPECT_EQ(error_of({"/admin/plugins", "POST", "Bearer admin-key", ""}, keys), 405);
  EXPECT_EQ(error_of({"/admin/elsewhere", "GET", "Bearer admin-key", ""}, keys), 404);
  EXPECT_EQ(error_of({"/admin/plugins/echo/fly", "POST", "Bearer admin-key", ""}, keys), 404);
  EXPECT_EQ(error_of({"/admin/plugins/echo/load", "POST", "Bearer admin-key", "[1]"}, keys), 400);
  // A config nested deeper than any plugin needs is refused while it is parsed.
  const std::string deep = R"({"config": )" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(error_of({"/admin/plugins/echo/load", "POST", "Bearer admin-key", deep}, keys), 400);
}

TEST_F(HttpServerTest, BytesThatAreNotUtf8FromAWorkerReachClientsAndTheAdminApiAndServingGoesOn) {
  install_hostile("invalid_utf8");
  make_host(nlohmann::json({{"plugins",
                             {{"hostile_invalid_utf8",
                               {{"restart", {{"max_crashes", 5}, {"window_ms", 60000}}}}}}}})
                .dump());
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_invalid_utf8").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_invalid_utf8").ok());
  ServerOptions options;
  options.admin_keys = {sha256_of("admin-key")};
  start_server(options);
  // Token text: whole and streamed.
  const std::string whole =
      ask(post("/v1/chat/completions", chat_body("hostile_invalid_utf8", "x", false)));
  EXPECT_THAT(whole, HasSubstr("200 OK"));
  EXPECT_THAT(whole, HasSubstr(std::string(kReplacement) + " bad "));
  const std::string streamed =
      ask(post("/v1/completions",
               R"({"model": "hostile_invalid_utf8", "prompt": "x", "stream": true})"),
          "data: [DONE]");
  EXPECT_THAT(streamed, HasSubstr(std::string(kReplacement) + " bad "));
  EXPECT_THAT(streamed, HasSubstr("data: [DONE]"));
  // A crash whose stderr holds such bytes, then the admin API lists it.
  const float x = 1.0f;
  host::InferRequest request;
  request.inputs.push_back(
      {"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
  EXPECT_FALSE(host_->execute_plugin("hostile_invalid_utf8", std::move(request)).ok());
  std::string listed;
  for (int i = 0; i < 200; ++i) {
    listed = ask(with_key(get("/admin/plugins"), "admin-key"), "]}");
    if (listed.find("hostile stderr") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(listed, HasSubstr("200 OK"));
  EXPECT_THAT(listed, HasSubstr("hostile stderr"));
  const nlohmann::json parsed = nlohmann::json::parse(body_of(listed), nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << listed;
  // The server is still up and serving.
  EXPECT_THAT(ask(get("/healthz"), "\"ok\""), HasSubstr("200 OK"));
  EXPECT_THAT(ask(post("/v1/chat/completions", chat_body("echo", "still here", false))),
              HasSubstr("\"content\":\"still here\""));
}

}  // namespace
}  // namespace pio::server
