#pragma once
// What the server tests share: a raw TCP client (Connection), request builders, tenants, and
// HttpServerTest, a HostFixture with an HttpServer on a free port.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "host_fixture.h"
#include "http_server.h"

namespace pio::server {

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
  // Whether every byte was sent (false: the peer closed or reset the connection).
  bool send(std::string_view bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
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
        reset_by_peer_ = n < 0;
        break;
      }
      received_.append(buf, static_cast<size_t>(n));
    }
    return received_;
  }
  bool closed_by_peer() const { return closed_by_peer_; }
  // Closed with a reset rather than an orderly end (what a client sees as a connection error).
  bool reset_by_peer() const { return reset_by_peer_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  bool connected_ = false;
  bool closed_by_peer_ = false;
  bool reset_by_peer_ = false;
  std::string received_;
};

inline std::string post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
}

// The same request with an API key.
inline std::string with_key(std::string request, const std::string& key) {
  const size_t at = request.find("\r\n") + 2;
  return request.insert(at, "Authorization: Bearer " + key + "\r\n");
}

inline Tenant tenant(const std::string& name, const std::string& key,
                     std::vector<std::string> models, TenantLimits limits = {}) {
  Tenant t;
  t.name = name;
  t.key_hashes = {sha256_of(key)};
  t.models = std::move(models);
  t.limits = limits;
  return t;
}

inline std::string chat_body(const std::string& model, const std::string& content, bool stream) {
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
  // Sends `request` on a new connection and reads until `until` (or the close).
  std::string ask(const std::string& request, const std::string& until = "}}",
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Connection c(port());
    c.send(request);
    return c.read_until(until, timeout);
  }

  std::unique_ptr<HttpServer> server_;
};

// The body of an HTTP answer read whole.
inline std::string body_of(const std::string& reply) {
  const size_t at = reply.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : reply.substr(at + 4);
}

}  // namespace pio::server
