// Tenant isolation under load: tenant A floods the server while tenant B streams chats; B's p99
// time to first token stays within 2x of its value without the flood. Real Host, real sandboxed
// echo workers (one per tenant), real HTTP.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "host_fixture.h"
#include "http_server.h"

namespace pio::server {
namespace {

using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string chat_request(const std::string& key, const std::string& content) {
  const std::string body = nlohmann::json({{"model", "echo"},
                                           {"messages", {{{"role", "user"}, {"content", content}}}},
                                           {"stream", true}})
                               .dump();
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Whether a content delta with text arrived (the first delta, the role's, has empty content).
bool has_content_token(const std::string& seen) {
  const std::string marker = "\"content\":\"";
  for (size_t at = seen.find(marker); at != std::string::npos; at = seen.find(marker, at + 1)) {
    if (at + marker.size() < seen.size() && seen[at + marker.size()] != '"') return true;
  }
  return false;
}

// Sends a streamed chat; returns the time to the first content token, or a negative value when
// the answer was not a stream (a 429, say). Reads the stream to its end.
double time_to_first_token(uint16_t port, const std::string& key, const std::string& content) {
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  const std::string request = chat_request(key, content);
  const auto start = Clock::now();
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  std::string seen;
  double first = -1;
  char buf[4096];
  const auto end = start + std::chrono::seconds(10);
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    if (first < 0 && has_content_token(seen)) {
      first = std::chrono::duration<double>(Clock::now() - start).count();
    }
    if (seen.find("data: [DONE]") != std::string::npos) break;
  }
  ::close(fd);
  if (seen.find(" 200 OK") == std::string::npos) return -1;
  return first;
}

std::string fmt_attempt(double quiet, double flooded) {
  return std::to_string(static_cast<int>(quiet * 1e6)) + " us -> " +
         std::to_string(static_cast<int>(flooded * 1e6)) + " us; ";
}

double p99(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, v.size() * 99 / 100)];
}

Tenant tenant(const std::string& name, const std::string& key, TenantLimits limits) {
  Tenant t;
  t.name = name;
  t.key_hashes = {sha256_of(key)};
  t.models = {"echo"};
  t.limits = limits;
  return t;
}

class TenantIsolationTest : public host::testing::HostFixture {};

TEST_F(TenantIsolationTest,
       AFloodingTenantKeepsAnotherTenantsP99TimeToFirstTokenWithinTwiceItsBaseline) {
  // Echo streams a token a millisecond: far faster than a model on this machine, so the flood
  // loads the server and the host with more chunks than real generations would.
  make_host(R"({"plugins": {"echo": {"config": {"token_delay_ms": 1}}}})");
  ASSERT_FALSE(HasFailure());
  activate_echo();
  ASSERT_FALSE(HasFailure());
  ServerOptions options;
  options.port = 0;
  // A may run 4 requests at once; its other requests are refused (429) without reaching a worker.
  options.tenants = {tenant("a", "key-a", {.max_concurrent = 4}), tenant("b", "key-b", {})};
  auto started = HttpServer::start(*host_, options);
  ASSERT_TRUE(started.ok()) << started.status().to_string();
  std::unique_ptr<HttpServer> server = std::move(*started);
  const uint16_t port = server->port();

  const std::string content(40, 'b');
  auto measure_b = [&](int n) {
    std::vector<double> ttft;
    for (int i = 0; i < n; ++i) {
      const double t = time_to_first_token(port, "key-b", content);
      EXPECT_GE(t, 0) << "tenant b's request " << i << " was not streamed";
      if (t >= 0) ttft.push_back(t);
    }
    return ttft;
  };
  measure_b(10);  // warm up both workers' paths

  // The flood is switched on and off in phases and B is measured in each, so that both sides of
  // the comparison see the same drift of this shared machine; what A still has in flight when a
  // phase ends is given time to drain before an unflooded phase is measured. The shared machine
  // can still spoil one attempt (a p99 is two samples' worth of bad luck), so the comparison is
  // made up to three times and holds when any attempt holds. A server that lets A's flood delay
  // B (before the model check stopped waiting on the Host's loop: 10-20x) fails all three.
  std::atomic<bool> running{true}, flood_on{false};
  std::atomic<int> a_streamed{0}, a_refused{0};
  std::vector<std::thread> flood;
  for (int i = 0; i < 16; ++i) {
    flood.emplace_back([&] {
      // In production a flood comes from other machines; here its clients share the two CPUs with
      // the server, so they run at the lowest priority to stand in for that. What the server does
      // for them (parsing, refusing, streaming A's answers, A's worker) competes at full weight.
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
      while (running) {
        if (!flood_on) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        const double t = time_to_first_token(port, "key-a", std::string(200, 'a'));
        (t >= 0 ? a_streamed : a_refused)++;
      }
    });
  }
  std::string attempts;
  bool held = false;
  for (int attempt = 0; attempt < 3 && !held; ++attempt) {
    std::vector<double> quiet, flooded;
    for (int phase = 0; phase < 20; ++phase) {
      const bool on = phase % 2 == 1;
      flood_on = on;
      std::this_thread::sleep_for(std::chrono::milliseconds(on ? 100 : 300));
      for (double t : measure_b(10)) (on ? flooded : quiet).push_back(t);
    }
    flood_on = false;
    const double baseline = p99(quiet), under_flood = p99(flooded);
    attempts += fmt_attempt(baseline, under_flood);
    held = under_flood <= 2.0 * baseline;
  }
  running = false;
  for (auto& t : flood) t.join();
  server->stop();

  RecordProperty("b_p99_ttft_attempts", attempts);
  EXPECT_GT(a_streamed.load(), 0);
  EXPECT_GT(a_refused.load(), 0) << "the flood never hit tenant a's limit";
  EXPECT_TRUE(held) << "tenant b's p99 time to first token (quiet -> flooded), per attempt: "
                    << attempts;
}

}  // namespace
}  // namespace pio::server
