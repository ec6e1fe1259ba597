// HttpServer over a real Host with real sandboxed workers (echo and hostile plugins), spoken to
// through raw sockets: what a client that misbehaves, leaves, or meets a crashing worker gets.

#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "host_fixture.h"

namespace pio::server {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// A plain TCP connection to the server.
class Connection {
 public:
  explicit Connection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Connection() { close(); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  // Reads until `until` appears in what was read, the peer closes, or the timeout passes.
  std::string read_until(const std::string& until, std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    while (received_.find(until) == std::string::npos && !closed_by_peer_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        closed_by_peer_ = true;
        break;
      }
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  bool closed_by_peer() const { return closed_by_peer_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  bool connected_ = false;
  bool closed_by_peer_ = false;
  std::string received_;
};

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
}

std::string chat_body(const std::string& model, const std::string& content, bool stream) {
  return nlohmann::json({{"model", model},
                         {"messages", {{{"role", "user"}, {"content", content}}}},
                         {"max_tokens", 1000},
                         {"stream", stream}})
      .dump();
}

class HttpServerTest : public host::testing::HostFixture {
 protected:
  void start_server(ServerOptions options = {}) {
    options.port = 0;
    auto server = HttpServer::start(*host_, options);
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    HostFixture::TearDown();
  }
  uint16_t port() const { return server_->port(); }

  std::unique_ptr<HttpServer> server_;
};

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
  make_host(nlohmann::json({{"plugins", {{"hostile_crash_mid_stream",
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
      {"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'h') + "\r\n\r\n",
       "431", "headers_too_large"},
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
  make_host(nlohmann::json(
                {{"plugins",
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
  request.inputs.push_back({"x", wire::DType::F32, {1}, std::as_bytes(std::span<const float>(&x, 1))});
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

}  // namespace
}  // namespace pio::server
