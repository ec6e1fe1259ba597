// HttpServer over a real Host with real sandboxed workers (echo and hostile plugins), spoken to
// through raw sockets: what a client that misbehaves, leaves, or meets a crashing worker gets.

#include "http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server_fixture.h"

namespace pio::server {
namespace {

using ::testing::HasSubstr;

TEST_F(HttpServerTest, AClientThatLeavesMidStreamCancelsItsGenerationInTheWorker) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 20}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  start_server();
  {
    Connection c(port());
    ASSERT_TRUE(c.connected());
    // 500 characters at 20 ms each: 10 s if nobody cancelled it.
    c.send(post("/v1/chat/completions", chat_body("echo", std::string(500, 'a'), true)));
    const std::string seen = c.read_until("\"content\":\"a\"", std::chrono::seconds(10));
    ASSERT_THAT(seen, HasSubstr("text/event-stream"));
    ASSERT_THAT(seen, HasSubstr("\"content\":\"a\""));
  }  // the client goes away
  // The worker runs one verb at a time: this answer can only come once the stream was cancelled.
  const auto start = Clock::now();
  auto next = host_->generate("echo", "ok", {.max_tokens = 2});
  ASSERT_TRUE(next.ok()) << next.status().to_string();
  EXPECT_EQ(next->text, "ok");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST_F(HttpServerTest, AWorkerCrashMidStreamEndsTheStreamWithAnErrorEventAndServingGoesOn) {
  install_hostile("crash_mid_stream");
  make_host(nlohmann::json({{"plugins",
                             {{"hostile_crash_mid_stream",
                               {{"model_roots", {(root_ / "models").string()}}}}}}})
                .dump());
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_crash_mid_stream").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_crash_mid_stream").ok());
  start_server();
  Connection c(port());
  // Its generate_text streams three tokens, then dereferences a null pointer.
  c.send(post("/v1/completions", R"({"model": "hostile_crash_mid_stream", "prompt": "abcdef", )"
                                 R"("stream": true})"));
  const std::string seen = c.read_until("data: [DONE]", std::chrono::seconds(10));
  EXPECT_THAT(seen, HasSubstr("\"text\":\"c\""));
  EXPECT_THAT(seen, HasSubstr("\"code\":\"worker_crashed\""));
  EXPECT_THAT(seen, HasSubstr("data: [DONE]"));
  // The metrics say how the worker died.
  {
    Connection m(port());
    m.send(get("/metrics"));
    EXPECT_THAT(
        m.read_until("pio_plugin_quarantined", std::chrono::seconds(5)),
        HasSubstr(
            R"(pio_worker_exits_total{plugin="hostile_crash_mid_stream",plugin_instance="",reason="signaled"} 1)"));
  }
  // Other requests are answered.
  Connection d(port());
  d.send(post("/v1/chat/completions", chat_body("echo", "still here", false)));
  EXPECT_THAT(d.read_until("still here", std::chrono::seconds(10)), HasSubstr("still here"));
}

TEST_F(HttpServerTest, ASlowClientIsDroppedAtTheRequestTimeout) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.request_timeout = std::chrono::milliseconds(300);
  start_server(options);
  Connection c(port());
  c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Le");
  c.read_until("never", std::chrono::seconds(5));
  EXPECT_TRUE(c.closed_by_peer());
  // And the server still answers others.
  Connection d(port());
  d.send(get("/healthz"));
  EXPECT_THAT(d.read_until("ok", std::chrono::seconds(5)), HasSubstr("200 OK"));
}

TEST_F(HttpServerTest, BadRequestsGetTheRightStatusAndAnOpenAiErrorBody) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.max_header_bytes = 1024;
  start_server(options);
  struct Case {
    std::string request;
    std::string status;
    std::string in_body;
  };
  const Case cases[] = {
      {post("/v1/chat/completions", "{not json"), "400 Bad Request", "not valid JSON"},
      {post("/v1/chat/completions", R"({"model": "echo", "messages": []})"), "400 Bad Request",
       "\"param\":\"messages\""},
      {post("/v1/chat/completions",
            R"({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]})"),
       "400 Bad Request", "\"param\":\"messages[0].role\""},
      {post("/v1/completions", R"({"model": "echo", "prompt": "x", "max_tokens": 0})"),
       "400 Bad Request", "\"param\":\"max_tokens\""},
      {post("/v1/completions", R"({"model": "ghost", "prompt": "x"})"), "404 Not Found",
       "model_not_found"},
      {get("/v1/chat/completions"), "405 Method Not Allowed", "method_not_allowed"},
      {get("/v2/anything"), "404 Not Found", "unknown_url"},
      {"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'h') + "\r\n\r\n", "431",
       "headers_too_large"},
  };
  for (const Case& k : cases) {
    Connection c(port());
    c.send(k.request);
    const std::string got = c.read_until("}}", std::chrono::seconds(5));
    EXPECT_THAT(got, HasSubstr(k.status)) << k.request.substr(0, 80);
    EXPECT_THAT(got, HasSubstr("{\"error\":{\"message\":")) << got;
    EXPECT_THAT(got, HasSubstr(k.in_body)) << got;
  }
}

TEST_F(HttpServerTest, ReadyzNamesAQuarantinedPlugin) {
  install_hostile("segv_infer");
  make_host(nlohmann::json({{"plugins",
                             {{"hostile_segv_infer",
                               {{"restart", {{"max_crashes", 1}, {"window_ms", 60000}}}}}}}})
                .dump());
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_segv_infer").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_segv_infer").ok());
  start_server();
  {
    Connection c(port());
    c.send(get("/readyz"));
    EXPECT_THAT(c.read_until("}", std::chrono::seconds(5)), HasSubstr("200 OK"));
  }
  const float x = 1.0f;
  host::InferRequest request;
  request.inputs.push_back(
      {"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
  EXPECT_FALSE(host_->execute_plugin("hostile_segv_infer", std::move(request)).ok());
  for (int i = 0; i < 100 && host_->plugin_status("hostile_segv_infer")->state !=
                                 host::PluginState::kQuarantined;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Connection c(port());
  c.send(get("/readyz"));
  const std::string got = c.read_until("}}", std::chrono::seconds(5));
  EXPECT_THAT(got, HasSubstr("503 Service Unavailable"));
  EXPECT_THAT(got, HasSubstr("hostile_segv_infer (quarantined)"));
  EXPECT_THAT(got, ::testing::Not(HasSubstr("echo (")));
}

TEST_F(HttpServerTest, ATenantSeesAndReachesOnlyItsOwnModels) {
  install_hostile("slow_drip");
  make_host(
      nlohmann::json(
          {{"plugins", {{"hostile_slow_drip", {{"model_roots", {(root_ / "models").string()}}}}}}})
          .dump());
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_slow_drip").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_slow_drip").ok());
  ServerOptions options;
  options.tenants = {tenant("a", "key-a", {"echo"}), tenant("b", "key-b", {"hostile_slow_drip"})};
  start_server(options);
  auto ask = [&](const std::string& request) {
    Connection c(port());
    c.send(request);
    return c.read_until("}]}", std::chrono::seconds(5));
  };
  const std::string models_a = ask(with_key(get("/v1/models"), "key-a"));
  EXPECT_THAT(models_a, HasSubstr("\"id\":\"echo\""));
  EXPECT_THAT(models_a, ::testing::Not(HasSubstr("hostile_slow_drip")));
  const std::string cross = ask(
      with_key(post("/v1/chat/completions", chat_body("hostile_slow_drip", "x", false)), "key-a"));
  EXPECT_THAT(cross, HasSubstr("404 Not Found"));
  EXPECT_THAT(cross, HasSubstr("model_not_found"));
  EXPECT_THAT(ask(with_key(post("/v1/chat/completions", chat_body("echo", "x", false)), "key-b")),
              HasSubstr("404 Not Found"));
  EXPECT_THAT(
      ask(with_key(post("/v1/chat/completions", chat_body("echo", "mine", false)), "key-a")),
      HasSubstr("\"content\":\"mine\""));
  EXPECT_THAT(ask(post("/v1/chat/completions", chat_body("echo", "x", false))),
              HasSubstr("401 Unauthorized"));
  EXPECT_THAT(ask(with_key(get("/v1/models"), "key-c")), HasSubstr("invalid_api_key"));
  // No key needed for the health endpoints.
  EXPECT_THAT(ask(get("/healthz")), HasSubstr("200 OK"));
}

TEST_F(HttpServerTest, ATenantOverItsLimitsGets429WithRetryAfter) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 20}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.tenants = {
      tenant("a", "key-a", {"echo"}, {.max_concurrent = 1, .requests_per_minute = 3})};
  start_server(options);
  auto ask = [&](const std::string& content) {
    Connection c(port());
    c.send(with_key(post("/v1/chat/completions", chat_body("echo", content, false)), "key-a"));
    return c.read_until("}}", std::chrono::seconds(10));
  };
  {
    Connection slow(port());
    slow.send(with_key(post("/v1/chat/completions", chat_body("echo", std::string(200, 's'), true)),
                       "key-a"));
    ASSERT_THAT(slow.read_until("\"content\":\"s\"", std::chrono::seconds(5)),
                HasSubstr("\"content\":\"s\""));
    const std::string busy = ask("x");
    EXPECT_THAT(busy, HasSubstr("429 Too Many Requests"));
    EXPECT_THAT(busy, HasSubstr("Retry-After: 1"));
    EXPECT_THAT(busy, HasSubstr("in flight"));
  }
  // The stream's client left; once its request ends, the tenant may run one again.
  std::string next;
  for (int i = 0; i < 100; ++i) {
    next = ask("y");
    if (next.find("429") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(next, HasSubstr("\"content\":\"y\""));
  EXPECT_THAT(ask("z"), HasSubstr("\"content\":\"z\""));
  // Three requests per minute: the fourth waits for a third of a minute.
  const std::string over = ask("w");
  EXPECT_THAT(over, HasSubstr("429 Too Many Requests"));
  EXPECT_THAT(over, HasSubstr("Retry-After: 20"));
  EXPECT_THAT(over, HasSubstr("requests per minute"));
}

TEST(Tenants, TheServerSectionIsParsedStrictlyAndKeysAreMatchedByHash) {
  const std::string hash_a = "8d2a0d66e2bdd9e7b7e9ad2d1f7f0fc36f4b7e5d0b5f4a7ba1e0b1c2d3e4f5a6";
  auto parsed = parse_server_config(R"({"tenants": {"a": {"api_keys_sha256": [")" + hash_a +
                                        R"("], "models": ["*"], "tokens_per_minute": 100}}, )"
                                        R"("shared_plugins": ["echo"], "admin_keys_sha256": [")" +
                                        hash_a + R"("]})",
                                    "test");
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  ASSERT_EQ(parsed->tenants.size(), 1u);
  EXPECT_TRUE(parsed->tenants[0].may_use("anything"));
  EXPECT_EQ(parsed->tenants[0].limits.tokens_per_minute, 100u);
  EXPECT_EQ(parsed->shared_plugins, std::vector<std::string>{"echo"});
  EXPECT_EQ(parsed->admin_keys.size(), 1u);
  const std::pair<const char*, const char*> bad[] = {
      {R"({"tenant": {}})", "server.tenant"},
      {R"({"tenants": {"a/b": {}}})", "tenant name"},
      {R"({"admin_keys_sha256": ["xyz"]})", "admin_keys_sha256[0]"},
      {R"({"tenants": {"a": {"models": ["x"]}}})", "api_keys_sha256"},
      {R"({"tenants": {"a": {"api_keys_sha256": ["abc"], "models": ["x"]}}})", "64 hex"},
      {R"({"tenants": {"a": {"api_keys_sha256": [")"
       "0000000000000000000000000000000000000000000000000000000000000000"
       R"("]}}})",
       "models"},
      {R"({"tenants": {"a": {"api_keys_sha256": [")"
       "0000000000000000000000000000000000000000000000000000000000000000"
       R"("], "models": ["x"], "max_concurrent": -1}}})",
       "max_concurrent"},
      {R"({"tenants": {"a": {"api_keys_sha256": [")"
       "0000000000000000000000000000000000000000000000000000000000000000"
       R"("], "models": ["x"], "rate": 1}}})",
       "tenants.a.rate"},
  };
  for (const auto& [json, expected] : bad) {
    auto p = parse_server_config(json, "test");
    EXPECT_FALSE(p.ok()) << json;
    EXPECT_THAT(p.status().message(), HasSubstr(expected)) << p.status().to_string();
  }
  // Two tenants may not share a key.
  const std::string z = "0000000000000000000000000000000000000000000000000000000000000000";
  auto shared = parse_server_config(R"({"tenants": {"a": {"api_keys_sha256": [")" + z +
                                        R"("], "models": ["x"]}, "b": {"api_keys_sha256": [")" + z +
                                        R"("], "models": ["y"]}}})",
                                    "test");
  EXPECT_THAT(shared.status().message(), HasSubstr("share an API key"));

  TenantTable table({tenant("a", "key-a", {"m"}), tenant("b", "key-b", {"m"})});
  EXPECT_EQ(table.authenticate("key-a"), 0);
  EXPECT_EQ(table.authenticate("key-b"), 1);
  EXPECT_EQ(table.authenticate("key-"), -1);
  EXPECT_EQ(table.authenticate(""), -1);
}

TEST(Tenants, ATokenBudgetSpentHoldsTheNextRequestBack) {
  TenantTable table({tenant("a", "k", {"m"}, {.tokens_per_minute = 600})});
  ASSERT_TRUE(table.admit(0).admitted);
  table.finish(0, 900);  // 300 over budget: at 10 tokens/s, 31 s until it is positive again
  const Admission held = table.admit(0);
  EXPECT_FALSE(held.admitted);
  EXPECT_GE(held.retry_after.count(), 30);
  EXPECT_THAT(held.why, HasSubstr("tokens per minute"));
}

TEST_F(HttpServerTest, MetricsAfterTrafficPassPromtoolAndCountWhatHappened) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  start_server();
  auto ask = [&](const std::string& request, const std::string& until) {
    Connection c(port());
    c.send(request);
    return c.read_until(until, std::chrono::seconds(10));
  };
  ask(post("/v1/chat/completions", chat_body("echo", "hello", false)), "}}");
  ask(post("/v1/chat/completions", chat_body("echo", "streamed", true)), "[DONE]");
  ask(post("/v1/completions", R"({"model": "echo", "prompt": "abc", "max_tokens": 2})"), "}}");
  // A model that is not served is counted without its name.
  ask(post("/v1/completions", R"({"model": "we\"ird\\name\nx", "prompt": "abc"})"), "}}");
  ask(post("/v1/chat/completions", "{broken"), "}}");
  const std::string reply =
      ask(get("/metrics"), "pio_worker_resident_bytes{plugin=\"echo\",plugin_instance=\"\"}");
  const size_t body_at = reply.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string body = reply.substr(body_at + 4);
  EXPECT_THAT(reply, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(
      body,
      HasSubstr(
          R"(pio_requests_total{endpoint="/v1/chat/completions",model="echo",tenant="",status="200"} 2)"));
  EXPECT_THAT(
      body,
      HasSubstr(
          R"(pio_requests_total{endpoint="/v1/completions",model="echo",tenant="",status="200"} 1)"));
  EXPECT_THAT(
      body,
      HasSubstr(
          R"(pio_requests_total{endpoint="/v1/completions",model="",tenant="",status="404"} 1)"));
  EXPECT_THAT(body, ::testing::Not(HasSubstr("ird")));
  EXPECT_THAT(body, HasSubstr(R"(status="400"} 1)"));
  EXPECT_THAT(body, HasSubstr(R"(pio_generation_tokens_total{model="echo",tenant=""} 15)"));
  EXPECT_THAT(body, HasSubstr(R"(pio_time_to_first_token_seconds_count{model="echo"} 1)"));
  EXPECT_THAT(body, HasSubstr(R"(pio_inter_token_latency_seconds_count{model="echo"} 7)"));
  EXPECT_THAT(body, HasSubstr(R"(pio_plugin_ready{plugin="echo",plugin_instance=""} 1)"));
  EXPECT_THAT(body, HasSubstr("pio_requests_in_flight 0"));

  // promtool (Debian package prometheus) is the reference parser and linter of the format.
  const std::string file = (root_ / "metrics.txt").string();
  std::ofstream(file) << body;
  const std::string command = "promtool check metrics < " + file + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  const int rc = ::pclose(pipe);
  EXPECT_EQ(rc, 0) << output << "\n---\n" << body;
}

TEST_F(HttpServerTest, EachTenantGetsItsOwnWorkerUnlessThePluginIsSharedAndNoWorkerIsIdle) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.tenants = {tenant("a", "key-a", {"echo"}), tenant("b", "key-b", {"echo"})};
  start_server(options);
  // Two workers for two tenants: the plugin's own serves a, an instance serves b.
  EXPECT_FALSE(host_->plugin_status("echo@a").ok());
  auto a = host_->plugin_status("echo"), b = host_->plugin_status("echo@b");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string() << b.status().to_string();
  EXPECT_NE(a->pid, b->pid);
  // Tenant a's worker dies: only a's requests see it; b is served by its own.
  ::kill(a->pid, SIGKILL);
  Connection c(port());
  c.send(with_key(post("/v1/chat/completions", chat_body("echo", "b unaffected", false)), "key-b"));
  EXPECT_THAT(c.read_until("}}", std::chrono::seconds(10)),
              HasSubstr("\"content\":\"b unaffected\""));
  EXPECT_EQ(host_->plugin_status("echo@b")->pid, b->pid);
  server_->stop();
  server_.reset();
  ASSERT_TRUE(host_->deactivate_plugin("echo").ok());
  activate_echo();
  ServerOptions shared = options;
  shared.shared_plugins = {"echo"};
  start_server(shared);
  EXPECT_FALSE(host_->plugin_status("echo@a").ok());
  EXPECT_FALSE(host_->plugin_status("echo@b").ok());
  Connection d(port());
  d.send(with_key(post("/v1/chat/completions", chat_body("echo", "shared", false)), "key-a"));
  EXPECT_THAT(d.read_until("}}", std::chrono::seconds(10)), HasSubstr("\"content\":\"shared\""));
}

TEST_F(HttpServerTest, TheAdminApiListsLoadsRestartsAndUnloadsPluginsBehindItsKey) {
  install_hostile("segv_infer");
  make_host(nlohmann::json({{"plugins",
                             {{"hostile_segv_infer",
                               {{"restart", {{"max_crashes", 1}, {"window_ms", 60000}}}}}}}})
                .dump());
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_segv_infer").ok());
  ServerOptions options;
  options.admin_keys = {sha256_of("admin-key")};
  start_server(options);
  auto admin = [&](const std::string& request) {
    Connection c(port());
    c.send(with_key(request, "admin-key"));
    return c.read_until("}", std::chrono::seconds(10));
  };
  {
    Connection c(port());
    c.send(with_key(get("/admin/plugins"), "key-a"));
    EXPECT_THAT(c.read_until("}}", std::chrono::seconds(5)), HasSubstr("401 Unauthorized"));
  }
  EXPECT_THAT(admin(post("/v1/completions", R"({"model": "hostile_segv_infer", "prompt": "x"})")),
              HasSubstr("404 Not Found"));
  EXPECT_THAT(admin(post("/admin/plugins/hostile_segv_infer/load", "{}")),
              HasSubstr("\"loaded\":\"hostile_segv_infer\""));
  // Loaded means served at once (its text verbs answer; infer is what crashes it).
  EXPECT_THAT(admin(post("/v1/completions", R"({"model": "hostile_segv_infer", "prompt": "x"})")),
              HasSubstr("200 OK"));
  const std::string listed = admin(get("/admin/plugins"));
  EXPECT_THAT(listed, HasSubstr("\"name\":\"hostile_segv_infer\""));
  EXPECT_THAT(listed, HasSubstr("\"trust_level\":\"low\""));
  // Crash it into quarantine, then bring it back with restart.
  const float x = 1.0f;
  host::InferRequest request;
  request.inputs.push_back(
      {"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
  EXPECT_FALSE(host_->execute_plugin("hostile_segv_infer", std::move(request)).ok());
  for (int i = 0; i < 100 && host_->plugin_status("hostile_segv_infer")->state !=
                                 host::PluginState::kQuarantined;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Connection q(port());
  q.send(with_key(get("/admin/plugins"), "admin-key"));
  EXPECT_THAT(q.read_until("]}", std::chrono::seconds(5)), HasSubstr("\"quarantined\":true"));
  EXPECT_THAT(admin(post("/admin/plugins/hostile_segv_infer/restart", "")), HasSubstr("restarted"));
  EXPECT_EQ(host_->plugin_status("hostile_segv_infer")->state, host::PluginState::kReady);
  EXPECT_THAT(admin(post("/admin/plugins/hostile_segv_infer/unload", "")), HasSubstr("unloaded"));
  EXPECT_FALSE(host_->plugin_status("hostile_segv_infer").ok());
  EXPECT_THAT(admin(post("/admin/plugins/ghost/load", "{}")), HasSubstr("404 Not Found"));
  EXPECT_THAT(admin(post("/admin/plugins/echo/fly", "")), HasSubstr("no admin verb"));
}

TEST_F(HttpServerTest, TheAdminApiIsOffWithoutAdminKeys) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  start_server();
  Connection c(port());
  c.send(get("/admin/plugins"));
  const std::string got = c.read_until("}}", std::chrono::seconds(5));
  EXPECT_THAT(got, HasSubstr("403 Forbidden"));
  EXPECT_THAT(got, HasSubstr("admin_keys_sha256"));
}

TEST_F(HttpServerTest, ShutdownLetsAStreamInFlightFinishAndRefusesNewRequests) {
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 10}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  start_server();
  Connection stream(port());
  const std::string text(100, 'z');  // about 1 s of streaming
  stream.send(post("/v1/chat/completions", chat_body("echo", text, true)));
  ASSERT_THAT(stream.read_until("\"content\":\"z\"", std::chrono::seconds(5)),
              HasSubstr("\"content\":\"z\""));
  const uint16_t bound = port();
  Connection waiting(bound);  // connected before the shutdown, asks after it began
  std::thread stopper([&] { server_->shutdown(std::chrono::seconds(20)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  waiting.send(post("/v1/chat/completions", chat_body("echo", "late", false)));
  EXPECT_THAT(waiting.read_until("}}", std::chrono::seconds(5)),
              HasSubstr("503 Service Unavailable"));
  const std::string all = stream.read_until("data: [DONE]", std::chrono::seconds(20));
  stopper.join();
  EXPECT_THAT(all, HasSubstr("\"finish_reason\":\"stop\""));
  EXPECT_THAT(all, HasSubstr("data: [DONE]"));
  EXPECT_FALSE(Connection(bound).connected());  // no longer accepting
}

TEST_F(HttpServerTest, AClientStillSendingA64MiBBodyReadsTheWhole413EveryTime) {
  make_host();
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.max_body_bytes = 1u << 20;
  start_server(options);
  const size_t body_bytes = size_t{64} << 20;
  const std::string chunk(1u << 20, 'x');
  for (int attempt = 0; attempt < 5; ++attempt) {
    SCOPED_TRACE(attempt);
    Connection c(port());
    ASSERT_TRUE(c.connected());
    // As a plain client does: the whole request first, then the answer.
    bool sent = c.send(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body_bytes) + "\r\n\r\n");
    for (size_t left = body_bytes; sent && left > 0; left -= chunk.size()) sent = c.send(chunk);
    EXPECT_TRUE(sent) << "the server reset the connection while the body was being sent";
    const std::string got = c.read_until("never", std::chrono::seconds(60));
    EXPECT_THAT(got, HasSubstr("413 Payload Too Large"));
    EXPECT_THAT(got, HasSubstr("\"code\":\"request_too_large\"}}"));
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_FALSE(c.reset_by_peer());
  }
  // The server still answers.
  EXPECT_THAT(ask(get("/healthz"), "\"ok\""), HasSubstr("200 OK"));
}

TEST_F(HttpServerTest, ATenantsTokenBudgetIsChargedWithTheTokensTheHostForwarded) {
  // This worker streams every token but reports that it generated one.
  install_hostile("underreport_usage");
  make_host();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / "hostile_underreport_usage").ok());
  ASSERT_TRUE(host_->activate_plugin("hostile_underreport_usage").ok());
  ServerOptions options;
  options.tenants = {
      tenant("a", "key-a", {"hostile_underreport_usage"}, {.tokens_per_minute = 30})};
  start_server(options);
  const std::string prompt(60, 'p');
  const std::string first =
      ask(with_key(post("/v1/completions",
                        R"({"model": "hostile_underreport_usage", "max_tokens": 100, "prompt": ")" +
                            prompt + R"("})"),
                   "key-a"));
  EXPECT_THAT(first, HasSubstr("200 OK"));
  EXPECT_THAT(first, HasSubstr("\"completion_tokens\":60"));
  // 60 tokens against 30 a minute: the next request waits for the budget to refill.
  const std::string second = ask(
      with_key(post("/v1/completions", R"({"model": "hostile_underreport_usage", "prompt": "q"})"),
               "key-a"));
  EXPECT_THAT(second, HasSubstr("429 Too Many Requests"));
  EXPECT_THAT(second, HasSubstr("tokens per minute"));
}

}  // namespace
}  // namespace pio::server
