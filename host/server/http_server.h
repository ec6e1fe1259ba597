#pragma once
// HttpServer: the OpenAI-compatible HTTP API over a pio::Host (Boost.Beast).
//
//   GET  /healthz               the process is up
//   GET  /readyz                every active plugin is ready (503 naming those that are not)
//   GET  /metrics               Prometheus text format (metrics.h)
//   GET  /v1/models             the active plugins
//   POST /v1/chat/completions   Host::chat (stream: true sends server-sent events)
//   POST /v1/completions        Host::generate
//   /admin/plugins/...          the admin API (admin_api.h)
//
// Threads: one network thread runs every connection (reads, writes, timeouts); Host calls block,
// so they run on a pool of request threads, and streamed chunks (which the Host delivers on its
// own loop thread) are posted back to the network thread. A client that disconnects mid-stream
// cancels its generation in the worker: the next chunk's callback answers false.
//
// With tenants configured, /v1/* needs a tenant's API key (401 otherwise), a tenant sees and
// reaches only its own models (others are 404, as if absent), and its limits answer 429 with
// Retry-After. Each tenant's requests run on its own worker of the plugin unless the plugin is
// shared: the plugin's own worker serves the first tenant allowed to use it, every other tenant
// gets a Host instance "<plugin>@<tenant>" started with the server (no worker serves nobody,
// none serves two tenants), and request threads
// are handed out round-robin between tenants with work waiting, so one tenant's flood waits
// behind its own requests, not in front of another's. /admin/* needs an admin key, and so does
// /metrics once admin keys are configured (its series name tenants and models); /healthz and
// /readyz need no key. Metrics are labelled only with served models (a request for any other
// model counts under model="").
//
// Everything a client controls is bounded: header bytes (431), body bytes (413), the time to send
// a whole request (slow clients are dropped before they reach a worker), idle keep-alive time,
// the request fields (RequestLimits), and how long a write may wait for a client that stops
// reading. An error answered before the request was read to its end (413, 431, 400) is followed
// by a lingering close (lingering_close.h), so the client reads it instead of a reset.
//
// No exception leaves a request thread, the network thread or a token callback: each is logged
// and answered with a 500 (escaped_exception.h), and every JSON is written with json_text.h.
//
// The one thing a caller gets wrong: the Host must outlive the server, and stop() (or the
// destructor) waits for the request threads, so in-flight Host calls finish or fail first.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "lingering_close.h"
#include "openai_protocol.h"
#include "pio/host/host.h"
#include "pio/ipc/status.h"
#include "tenants.h"

namespace pio::server {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port)
  size_t max_header_bytes = size_t{16} * 1024;
  size_t max_body_bytes = 4u << 20;
  // From the first byte of a request until its last: a slow client is dropped after this.
  std::chrono::milliseconds request_timeout{10'000};
  // A keep-alive connection with no request in progress is closed after this.
  std::chrono::milliseconds idle_timeout{60'000};
  // A write to a client that does not read for this long ends the connection (and its stream).
  std::chrono::milliseconds write_timeout{30'000};
  // After an answer to a request not read to its end: how long, and how many bytes, the server
  // reads and discards while the client finishes sending.
  LingerLimits linger;
  // Host calls running at once; more requests wait for a thread.
  uint32_t request_threads = 64;
  RequestLimits limits;
  // Who may call /v1/* (Authorization: Bearer KEY) and how much; none: open to every client.
  std::vector<Tenant> tenants;
  // Plugins whose one worker serves every tenant; every other plugin gets a worker per tenant.
  std::vector<std::string> shared_plugins;
  // Keys of the admin API; none: /admin/* answers 403.
  std::vector<KeyHash> admin_keys;
};

class HttpServer {
 public:
  // Binds and starts serving; fails with the address and the reason when it cannot bind.
  static Result<std::unique_ptr<HttpServer>> start(Host& host, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port bound (the chosen one when options.port was 0).
  uint16_t port() const;
  // Stops accepting, closes every connection (cancelling their generations) and waits for the
  // request threads. Idempotent.
  void stop();
  // Graceful stop (SIGTERM): stops accepting, answers new requests on open connections with 503,
  // lets generations in flight finish for up to `drain`, then stop().
  void shutdown(std::chrono::milliseconds drain);

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pio::server
