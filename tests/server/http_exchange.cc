#include "http_exchange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace pio::server::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string exchange(uint16_t port, const std::string& request, Clock::duration timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string received;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    const auto end = Clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(end - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      received.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return received;
}

namespace {

std::string auth_header(const std::string& api_key) {
  return api_key.empty() ? std::string() : "Authorization: Bearer " + api_key + "\r\n";
}

// The body of an HTTP response, de-chunked when it is chunked.
std::string response_body(const std::string& raw, size_t head_end) {
  std::string head = raw.substr(0, head_end);
  std::transform(head.begin(), head.end(), head.begin(), ::tolower);
  size_t at = head_end + 4;
  if (head.find("transfer-encoding: chunked") == std::string::npos) return raw.substr(at);
  std::string body;
  for (;;) {
    const size_t line_end = raw.find("\r\n", at);
    if (line_end == std::string::npos) break;
    const size_t size = std::strtoul(raw.c_str() + at, nullptr, 16);
    if (size == 0 || line_end + 2 + size > raw.size()) break;
    body.append(raw, line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return body;
}

std::string error_code_of(const nlohmann::json& error) {
  if (!error.is_object()) return "(no code)";
  if (error.contains("code") && error["code"].is_string()) return error["code"].get<std::string>();
  if (error.contains("type") && error["type"].is_string()) return error["type"].get<std::string>();
  return "(no code)";
}

}  // namespace

std::string post(const std::string& target, const std::string& body, const std::string& api_key) {
  return "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
         auth_header(api_key) +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string get(const std::string& target, const std::string& api_key) {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
         auth_header(api_key) + "\r\n";
}

Outcome classify(const std::string& raw, bool chat, bool stream) {
  Outcome out;
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) {
    out.why = raw.empty() ? "no answer" : "no complete header: " + raw.substr(0, 200);
    return out;
  }
  out.status = std::atoi(raw.c_str() + 9);
  const std::string body = response_body(raw, head_end);
  if (out.status != 200 || !stream) {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (out.status != 200) {
      // An error before the first chunk: the ordinary error response, not a stream.
      if (j.is_object() && j.contains("error")) {
        out.kind = Outcome::kError;
        out.error_code = error_code_of(j["error"]);
      } else {
        out.why =
            "HTTP " + std::to_string(out.status) + " without an error body: " + body.substr(0, 300);
      }
      return out;
    }
    if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
        j["choices"].empty()) {
      out.why = "a 200 whose body has no choices: " + body.substr(0, 300);
      return out;
    }
    const auto& choice = j["choices"][0];
    if (chat && choice.contains("message") && choice["message"].contains("content") &&
        choice["message"]["content"].is_string()) {
      out.text = choice["message"]["content"].get<std::string>();
    } else if (!chat && choice.contains("text") && choice["text"].is_string()) {
      out.text = choice["text"].get<std::string>();
    }
    out.kind = Outcome::kCompleted;
    return out;
  }
  bool done = false;
  size_t event_at = 0;
  while (event_at < body.size()) {
    size_t event_end = body.find("\n\n", event_at);
    if (event_end == std::string::npos) event_end = body.size();
    const std::string event = body.substr(event_at, event_end - event_at);
    event_at = event_end + 2;
    if (event.rfind("data: ", 0) != 0) continue;
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const auto j = nlohmann::json::parse(data, nullptr, false);
    if (!j.is_object()) {
      out.why = "an event that is not JSON: " + data.substr(0, 200);
      return out;
    }
    if (j.contains("error")) {
      out.error_code = error_code_of(j["error"]);
      continue;
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) continue;
    const auto& choice = j["choices"][0];
    if (chat && choice.contains("delta") && choice["delta"].contains("content") &&
        choice["delta"]["content"].is_string()) {
      out.text += choice["delta"]["content"].get<std::string>();
    } else if (!chat && choice.contains("text") && choice["text"].is_string()) {
      out.text += choice["text"].get<std::string>();
    }
  }
  if (!done) {
    out.why = "the stream ended without data: [DONE] after " + std::to_string(raw.size()) +
              " bytes (text so far \"" + out.text + "\")";
  } else {
    out.kind = out.error_code.empty() ? Outcome::kCompleted : Outcome::kError;
  }
  return out;
}

}  // namespace pio::server::testing
