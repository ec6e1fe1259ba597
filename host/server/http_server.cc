#include "http_server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include "admin_api.h"
#include "escaped_exception.h"
#include "lingering_close.h"
#include "metrics.h"
#include "request_threads.h"

namespace pio::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::system_clock;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
}

std::string random_id(std::string_view prefix) {
  thread_local std::mt19937_64 random(std::random_device{}());
  return fmt::format("{}{:016x}{:08x}", prefix, random(), static_cast<uint32_t>(random()));
}

class Session;

}  // namespace

struct HttpServer::Impl {
  Host& host;
  ServerOptions options;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread network;
  RequestThreads requests;
  std::mutex sessions_mu;
  std::set<std::shared_ptr<Session>> sessions;
  std::atomic<bool> stopped{false};
  TenantTable tenants;
  ServerMetrics metrics;
  std::atomic<int> in_flight{0};
  std::atomic<bool> draining{false};

  // The names of the active plugins, as of at most kActiveNamesAge ago. Every generation request
  // checks its model against them on the network thread, which must not wait for the Host's
  // loop each time (under load that loop is busy streaming other requests' chunks). A plugin
  // that stopped since is still caught: the Host call itself then fails.
  static constexpr std::chrono::milliseconds kActiveNamesAge{250};
  std::shared_ptr<const std::set<std::string>> active_names() {
    const auto now = std::chrono::steady_clock::now();
    if (active_names_ == nullptr || now - active_names_at_ > kActiveNamesAge) {
      auto names = std::make_shared<std::set<std::string>>();
      for (const auto& p : host.list_plugins()) {
        if (p.active && p.instance.empty()) names->insert(p.name);
      }
      active_names_ = std::move(names);
      active_names_at_ = now;
    }
    return active_names_;
  }
  // Network thread only.
  std::shared_ptr<const std::set<std::string>> active_names_;
  std::chrono::steady_clock::time_point active_names_at_;

  bool shared(const std::string& plugin) const {
    return tenants.open() || std::find(options.shared_plugins.begin(), options.shared_plugins.end(),
                                       plugin) != options.shared_plugins.end();
  }
  // The tenant the plugin's own worker serves when each tenant has a worker of its own: the first
  // that may use it (-1: none). Every other tenant gets an instance, so no worker is started
  // that serves nobody, and no two tenants share one.
  int owner_of(const std::string& plugin) const {
    for (size_t i = 0; i < options.tenants.size(); ++i) {
      if (options.tenants[i].may_use(plugin)) return static_cast<int>(i);
    }
    return -1;
  }
  // The Host plugin key a tenant's requests for `model` go to.
  std::string route_key(const std::string& model, int tenant) const {
    if (tenant < 0 || shared(model) || tenant == owner_of(model)) return model;
    return model + "@" + tenants.tenant(tenant).name;
  }
  // Starts the worker of active plugin `name` of each tenant but its owner (none when shared).
  Status activate_for_tenants(const std::string& name) {
    if (shared(name)) return ok_status();
    const int owner = owner_of(name);
    for (size_t i = 0; i < options.tenants.size(); ++i) {
      const Tenant& t = options.tenants[i];
      if (!t.may_use(name) || static_cast<int>(i) == owner) continue;
      Status s = host.activate_instance(name, t.name);
      if (!s.ok() && s.code() != ErrorCode::kFailedPrecondition) {
        return s.with_context(fmt::format("tenant \"{}\"", t.name));
      }
      if (!s.ok() && !host.plugin_status(name + "@" + t.name).ok()) return s;
    }
    return ok_status();
  }

  // The admin API's load: the plugin, then each tenant's worker of it.
  Status load(const std::string& name, host::ActivateOptions activate) {
    PIO_RETURN_IF_ERROR(host.activate_plugin(name, std::move(activate)));
    return activate_for_tenants(name);
  }

  Impl(Host& h, ServerOptions o)
      : host(h),
        options(std::move(o)),
        requests(options.request_threads),
        tenants(options.tenants) {}

  void accept();
  // The network thread. Every handler catches what it can answer; an exception that still
  // reaches the loop is logged and the loop goes on serving the other connections.
  void run_network() {
    for (;;) {
      try {
        io.run();
        return;
      } catch (...) {
        static_cast<void>(escaped_exception("the network thread"));
      }
    }
  }
};

namespace {

using Request = http::request<http::string_body>;

// One client connection: reads requests one after another (keep-alive), answers each, and while
// it streams, watches the socket for the client going away.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)) {}

  void start() { read_request(); }

  // From the network thread: closes the connection; a stream in progress is cancelled.
  void close() {
    gone_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    // Keep-alive idle time until the first byte, then the whole request must arrive in time;
    // one deadline (the shorter) keeps a slow client from holding the connection.
    stream_.expires_after(std::min(server_.options.idle_timeout, server_.options.request_timeout));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted) {
      return finish();
    }
    // The request was not read to its end: answer, then let the client finish sending.
    linger_ = true;
    if (ec == http::error::body_limit) {
      return respond_error(
          {413, "invalid_request_error",
           fmt::format("the request body is over {} bytes", server_.options.max_body_bytes),
           std::nullopt, "request_too_large"},
          /*keep_alive=*/false);
    }
    if (ec == http::error::header_limit) {
      return respond_error(
          {431, "invalid_request_error",
           fmt::format("the request headers are over {} bytes", server_.options.max_header_bytes),
           std::nullopt, "headers_too_large"},
          false);
    }
    if (ec) {
      if (ec == net::error::eof || ec == net::error::connection_reset) return finish();
      return respond_error(
          {400, "invalid_request_error", fmt::format("malformed HTTP request: {}", ec.message()),
           std::nullopt, std::nullopt},
          false);
    }
    linger_ = false;
    request_ = parser_->release();
    stream_.expires_never();
    started_ = std::chrono::steady_clock::now();
    endpoint_.clear();
    model_.clear();
    answered_ = false;
    guarded("routing a request", [this] { route(); });
  }

  // Runs a handler of this connection; an exception it lets out is answered with a 500 (or ends
  // a stream already begun) instead of ending the thread.
  template <typename Fn>
  void guarded(std::string_view what, Fn&& fn) {
    try {
      fn();
    } catch (...) {
      const Status failure = escaped_exception(what);
      try {
        if (header_sent_ || answered_) return finish();
        respond_error(api_error_from(failure), false);
      } catch (...) {
        static_cast<void>(escaped_exception("answering a failed request"));
        finish();
      }
    }
  }

  // Posts `fn` to the network thread, guarded.
  template <typename Fn>
  void on_network_thread(std::string_view what, Fn fn) {
    net::post(stream_.get_executor(), [self = shared_from_this(), what,
                                       fn = std::move(fn)]() mutable { self->guarded(what, fn); });
  }

  void route() {
    const std::string target(request_.target());
    const std::string path = target.substr(0, target.find('?'));
    const bool get = request_.method() == http::verb::get;
    const bool post = request_.method() == http::verb::post;
    if (path == "/healthz" && get) return respond(200, R"({"status":"ok"})");
    if (path == "/readyz" && get) return readyz();
    if (path == "/metrics" && get) return metrics();
    if (path == "/v1/chat/completions" || path == "/v1/completions") endpoint_ = path;
    if (server_.draining && path != "/healthz" && path != "/metrics") {
      return respond_error(
          {503, "service_unavailable", "the server is shutting down; retry on another instance",
           std::nullopt, "shutting_down"},
          false);
    }
    if (path.starts_with("/admin/")) return admin(path);
    if (path.starts_with("/v1/") && !authenticate()) return;
    if (path == "/v1/models" && get) return models();
    if (path == "/v1/chat/completions" && post) return chat();
    if (path == "/v1/completions" && post) return completion();
    const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics" ||
                       path == "/v1/models" || path == "/v1/chat/completions" ||
                       path == "/v1/completions";
    if (known) {
      return respond_error(
          {405, "invalid_request_error",
           fmt::format("{} does not take {}", path, std::string(request_.method_string())),
           std::nullopt, "method_not_allowed"},
          request_.keep_alive());
    }
    respond_error({404, "invalid_request_error", fmt::format("no such endpoint: {}", path),
                   std::nullopt, "unknown_url"},
                  request_.keep_alive());
  }

  // With admin keys configured, only they may read the metrics (they name tenants and models).
  void metrics() {
    const auto header = request_[http::field::authorization];
    const std::string_view value(header.data(), header.size());
    if (!server_.options.admin_keys.empty() &&
        (!value.starts_with("Bearer ") ||
         !key_matches(value.substr(7), server_.options.admin_keys))) {
      return respond_error({401, "invalid_request_error", "/metrics needs an admin key",
                            std::nullopt, "invalid_api_key"},
                           request_.keep_alive());
    }
    respond(200, server_.metrics.render(server_.host.list_plugins()), true,
            "text/plain; version=0.0.4; charset=utf-8");
  }

  // With tenants configured: the request's Bearer key names its tenant, else 401.
  bool authenticate() {
    if (server_.tenants.open()) return true;
    const auto header = request_[http::field::authorization];
    const std::string_view value(header.data(), header.size());
    if (!value.starts_with("Bearer ") || value.size() == 7) {
      respond_error({401, "invalid_request_error",
                     "no API key: send the header Authorization: Bearer <your key>", std::nullopt,
                     "invalid_api_key"},
                    request_.keep_alive());
      return false;
    }
    tenant_ = server_.tenants.authenticate(value.substr(7));
    if (tenant_ < 0) {
      respond_error({401, "invalid_request_error", "the API key is not valid", std::nullopt,
                     "invalid_api_key"},
                    request_.keep_alive());
      return false;
    }
    return true;
  }

  bool tenant_may_use(const std::string& model) const {
    return tenant_ < 0 || server_.tenants.tenant(tenant_).may_use(model);
  }

  // The plugins that are active, with their states.
  std::vector<host::PluginStatus> active_plugins() {
    std::vector<host::PluginStatus> active;
    for (auto& p : server_.host.list_plugins()) {
      if (p.active && p.instance.empty()) active.push_back(std::move(p));
    }
    return active;
  }

  void readyz() {
    std::vector<std::string> not_ready;
    for (const auto& p : active_plugins()) {
      if (p.state != host::PluginState::kReady) {
        not_ready.push_back(fmt::format("{} ({})", p.name, host::plugin_state_name(p.state)));
      }
    }
    if (not_ready.empty()) return respond(200, R"({"status":"ready"})");
    respond_error(
        {503, "service_unavailable", fmt::format("not ready: {}", fmt::join(not_ready, ", ")),
         std::nullopt, "not_ready"},
        request_.keep_alive());
  }

  void models() {
    std::vector<std::string> ids;
    for (const auto& p : active_plugins()) {
      if (tenant_may_use(p.name)) ids.push_back(p.name);
    }
    respond(200, models_body(ids, unix_now()));
  }

  // 404 unless `model` is an active plugin.
  bool check_model(const std::string& model) {
    // Another tenant's model is answered as if it did not exist.
    if (tenant_may_use(model) && server_.active_names()->contains(model)) return true;
    respond_error({404, "invalid_request_error",
                   fmt::format("the model '{}' does not exist (GET /v1/models lists them)", model),
                   "model", "model_not_found"},
                  request_.keep_alive());
    return false;
  }

  void chat() {
    ChatParse parsed = parse_chat_request(request_.body(), server_.options.limits);
    if (!parsed.request) return respond_error(parsed.error, request_.keep_alive());
    if (!check_model(parsed.request->model)) return;
    // Only a served model names a series: a client's made-up names must not grow the metrics.
    model_ = parsed.request->model;
    auto r = std::make_shared<ChatRequest>(std::move(*parsed.request));
    const std::string key = server_.route_key(r->model, tenant_);
    run_generation(
        *r, "chatcmpl-",
        [r, key](Host& host, const host::GenerateOptions& options, host::TokenCallback on_chunk) {
          return host.chat(key, r->chat_json, options, std::move(on_chunk));
        });
  }

  void completion() {
    CompletionParse parsed = parse_completion_request(request_.body(), server_.options.limits);
    if (!parsed.request) return respond_error(parsed.error, request_.keep_alive());
    if (!check_model(parsed.request->model)) return;
    // Only a served model names a series: a client's made-up names must not grow the metrics.
    model_ = parsed.request->model;
    auto r = std::make_shared<CompletionRequest>(std::move(*parsed.request));
    const std::string key = server_.route_key(r->model, tenant_);
    run_generation(
        *r, "cmpl-",
        [r, key](Host& host, const host::GenerateOptions& options, host::TokenCallback on_chunk) {
          return host.generate_stream(key, r->prompt, options, std::move(on_chunk));
        });
  }

  using Call = std::function<Result<host::GenerateResult>(Host&, const host::GenerateOptions&,
                                                          host::TokenCallback)>;

  // Runs the request's n generations on a request thread; streams or answers at the end.
  void run_generation(const GenerationRequest& request, std::string_view id_prefix, Call call) {
    const bool chat = id_prefix == "chatcmpl-";
    auto self = shared_from_this();
    const std::string id = random_id(id_prefix);
    const int64_t created = unix_now();
    const bool keep_alive = request_.keep_alive();
    const int tenant = tenant_;
    if (tenant >= 0) {
      const Admission admission = server_.tenants.admit(tenant);
      if (!admission.admitted) {
        retry_after_ = admission.retry_after;
        return respond_error({429, "rate_limit_error", admission.why + "; retry later",
                              std::nullopt, "rate_limit_exceeded"},
                             keep_alive);
      }
    }
    streaming_ = request.stream;
    if (streaming_) watch_for_disconnect();
    server_.metrics.in_flight(+1);
    ++server_.in_flight;
    const auto started = started_;
    server_.requests.submit(tenant, [self, request, id, created, keep_alive, chat, tenant, started,
                                     call = std::move(call)] {
      Generated out;
      try {
        self->generate(request, id, created, chat, started, call, out);
      } catch (...) {
        out.failure = escaped_exception("a generation");
      }
      if (tenant >= 0) {
        self->server_.tenants.finish(tenant, out.usage.prompt_tokens + out.usage.completion_tokens);
      }
      self->server_.metrics.in_flight(-1);
      --self->server_.in_flight;
      self->server_.metrics.tokens(request.model, self->tenant_name(tenant),
                                   out.usage.prompt_tokens, out.usage.completion_tokens);
      if (!request.stream) {
        self->on_network_thread("a generation's answer", [self, out, request, id, created,
                                                          keep_alive, chat] {
          if (!out.failure.ok()) {
            return self->respond_error(api_error_from(out.failure), keep_alive);
          }
          self->respond(
              200, chat ? chat_completion_body(id, created, request.model, out.choices, out.usage)
                        : completion_body(id, created, request.model, out.choices, out.usage));
        });
        return;
      }
      std::string tail;
      if (!out.failure.ok()) {
        tail = sse(stream_error_event(api_error_from(out.failure)));
      } else if (request.include_usage) {
        tail = sse(usage_chunk(id, created, request.model,
                               chat ? "chat.completion.chunk" : "text_completion", out.usage));
      }
      tail += "data: [DONE]\n\n";
      // A failure before anything was streamed is still an ordinary HTTP error.
      self->post_stream_end(std::move(tail), out.failure, keep_alive);
    });
  }

  // What a request's generations produced so far.
  struct Generated {
    std::vector<Choice> choices;
    Usage usage;
    Status failure;
  };

  // The request's n generations, one after another (request thread). Completion tokens are the
  // ones the Host forwarded, counted here: a worker's own count could say anything, and tenants'
  // token budgets and the metrics are charged with this one.
  void generate(const GenerationRequest& request, const std::string& id, int64_t created, bool chat,
                std::chrono::steady_clock::time_point started, const Call& call, Generated& out) {
    ServerMetrics& metrics = server_.metrics;
    auto self = shared_from_this();
    auto last_token = std::make_shared<std::chrono::steady_clock::time_point>();
    for (uint32_t i = 0; i < request.n && out.failure.ok(); ++i) {
      host::GenerateOptions options = request.options;
      if (options.seed && i > 0) options.seed = *options.seed + i;
      uint64_t forwarded = 0;
      bool first = true;
      Status callback_failure;
      // Runs on the Host's loop thread: nothing may escape it.
      host::TokenCallback on_chunk = [&, i](const host::TokenChunk& c) {
        try {
          if (gone_) return false;
          // A chunk with text but no ids still cost at least one token.
          forwarded += std::max<uint64_t>(c.token_ids.size(), c.text.empty() ? 0 : 1);
          if (!request.stream) return true;
          const auto now = std::chrono::steady_clock::now();
          if (*last_token == std::chrono::steady_clock::time_point{}) {
            metrics.first_token(request.model,
                                std::chrono::duration<double>(now - started).count());
          } else {
            metrics.inter_token(request.model,
                                std::chrono::duration<double>(now - *last_token).count());
          }
          *last_token = now;
          std::string events;
          if (chat && first) events += sse(chat_chunk_role(id, created, request.model, i));
          first = false;
          if (!c.text.empty()) {
            events +=
                sse(chat ? chat_chunk_content(id, created, request.model, i, c.text)
                         : completion_chunk(id, created, request.model, i, c.text, std::nullopt));
          }
          if (!events.empty()) self->post_event(std::move(events));
          return true;
        } catch (...) {
          callback_failure = escaped_exception("a token callback");
          return false;
        }
      };
      auto done = call(server_.host, options, on_chunk);
      if (i == 0 && done.ok()) out.usage.prompt_tokens = done->prompt_tokens;
      out.usage.completion_tokens += static_cast<uint32_t>(forwarded);
      if (!callback_failure.ok()) {
        out.failure = callback_failure;
        break;
      }
      if (!done.ok()) {
        out.failure = done.status();
        break;
      }
      if (done->finish_reason == host::FinishReason::kCancelled) {
        out.failure = cancelled_error("the client went away");
        break;
      }
      out.choices.push_back({done->text, done->finish_reason});
      if (request.stream) {
        post_event(
            sse(chat ? chat_chunk_finish(id, created, request.model, i, done->finish_reason)
                     : completion_chunk(id, created, request.model, i, "", done->finish_reason)));
      }
    }
  }

  static std::string sse(const std::string& json) { return "data: " + json + "\n\n"; }

  // ---- admin API ----

  void admin(const std::string& path) {
    const auto header = request_[http::field::authorization];
    const std::string method(request_.method_string());
    auto call = route_admin(
        {path, method, std::string_view(header.data(), header.size()), request_.body()},
        server_.options.admin_keys,
        [&server = server_](Host&, const std::string& name, host::ActivateOptions options) {
          return server.load(name, std::move(options));
        });
    if (auto* refused = std::get_if<ApiError>(&call)) {
      return respond_error(*refused, request_.keep_alive());
    }
    run_admin(std::move(std::get<AdminWork>(call)));
  }

  // Admin work blocks on the Host: it runs on a request thread, outside the tenants' turns.
  void run_admin(AdminWork work) {
    const bool keep_alive = request_.keep_alive();
    server_.requests.submit(-2, [self = shared_from_this(), work = std::move(work), keep_alive] {
      Result<std::string> answer = internal_error("not run");
      try {
        answer = work(self->server_.host);
      } catch (...) {
        answer = escaped_exception("the admin API");
      }
      self->on_network_thread(
          "the admin API's answer", [self, answer = std::move(answer), keep_alive] {
            // What is active changed: the next request must not see the snapshot from before.
            self->server_.active_names_.reset();
            if (!answer.ok())
              return self->respond_error(api_error_from(answer.status()), keep_alive);
            self->respond(200, *answer, keep_alive);
          });
    });
  }

  // ---- streaming (all on the network thread) ----

  void post_event(std::string events) {
    on_network_thread("a stream's write",
                      [self = shared_from_this(), events = std::move(events)]() mutable {
                        self->queue_write(std::move(events));
                      });
  }

  void post_stream_end(std::string tail, Status failure, bool keep_alive) {
    on_network_thread("a stream's end", [self = shared_from_this(), tail = std::move(tail),
                                         failure = std::move(failure), keep_alive]() mutable {
      if (!self->header_sent_ && !failure.ok()) {
        self->streaming_ = false;
        return self->respond_error(api_error_from(failure), keep_alive);
      }
      self->record(failure.ok() ? 200 : api_error_from(failure).http_status);
      self->queue_write(std::move(tail));
      self->stream_done_ = true;
      self->pump();
    });
  }

  void queue_write(std::string data) {
    if (gone_) return;
    pending_.push_back(std::move(data));
    pump();
  }

  void pump() {
    if (writing_ || gone_) return;
    if (!header_sent_) {
      writing_ = true;
      header_sent_ = true;
      auto response =
          std::make_shared<http::response<http::empty_body>>(http::status::ok, request_.version());
      response->set(http::field::content_type, "text/event-stream");
      response->set(http::field::cache_control, "no-cache");
      // The connection ends with the stream: its socket is being watched for the client leaving,
      // so it cannot read a next request as well.
      response->keep_alive(false);
      response->chunked(true);
      auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*response);
      stream_.expires_after(server_.options.write_timeout);
      http::async_write_header(stream_, *serializer,
                               [self = shared_from_this(), response, serializer](
                                   beast::error_code ec, size_t) { self->on_written(ec); });
      return;
    }
    if (!pending_.empty()) {
      writing_ = true;
      // Everything queued since the last write goes in one chunk: a fast stream then costs the
      // network thread one write per batch, not one per token.
      auto data = std::make_shared<std::string>(std::move(pending_.front()));
      pending_.pop_front();
      while (!pending_.empty()) {
        *data += pending_.front();
        pending_.pop_front();
      }
      stream_.expires_after(server_.options.write_timeout);
      net::async_write(stream_, http::make_chunk(net::buffer(*data)),
                       [self = shared_from_this(), data](beast::error_code ec, size_t) {
                         self->on_written(ec);
                       });
      return;
    }
    if (stream_done_) {
      writing_ = true;
      stream_done_ = false;
      stream_.expires_after(server_.options.write_timeout);
      net::async_write(stream_, http::make_chunk_last(),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         self->writing_ = false;
                         self->streaming_ = false;
                         static_cast<void>(ec);
                         self->finish();
                       });
    }
  }

  void on_written(beast::error_code ec) {
    writing_ = false;
    if (ec) {
      gone_ = true;
      return finish();
    }
    pump();
  }

  // While a stream runs nothing else is read; a read that ends means the client went away.
  void watch_for_disconnect() {
    auto probe = std::make_shared<std::array<char, 256>>();
    stream_.socket().async_read_some(
        net::buffer(*probe), [self = shared_from_this(), probe](beast::error_code ec, size_t) {
          if (ec) {
            self->gone_ = true;
          } else if (self->streaming_) {
            self->watch_for_disconnect();  // pipelined bytes: the client is still there
          }
        });
  }

  // ---- whole responses ----

  std::string tenant_name(int tenant) const {
    return tenant < 0 ? std::string() : server_.tenants.tenant(tenant).name;
  }

  // One answered generation request in the metrics.
  void record(int status) {
    if (endpoint_.empty()) return;
    server_.metrics.request_done(
        endpoint_, model_, tenant_name(tenant_), status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    endpoint_.clear();
  }

  void respond(int status, std::string body, bool keep_alive = true,
               const char* content_type = "application/json") {
    answered_ = true;
    record(status);
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(status), request_.version());
    response->set(http::field::content_type, content_type);
    if (retry_after_.count() > 0) {
      response->set(http::field::retry_after, std::to_string(retry_after_.count()));
      retry_after_ = std::chrono::seconds(0);
    }
    response->keep_alive(keep_alive && request_.keep_alive());
    response->body() = std::move(body);
    response->prepare_payload();
    stream_.expires_after(server_.options.write_timeout);
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code ec, size_t) {
                        if (ec) return self->finish();
                        if (self->linger_) {
                          return linger_then(self->stream_, self->server_.options.linger,
                                             [self] { self->finish(); });
                        }
                        if (!response->keep_alive()) return self->finish();
                        self->read_request();
                      });
  }

  void respond_error(const ApiError& error, bool keep_alive) {
    respond(error.http_status, error_body(error), keep_alive);
  }

  void finish() {
    gone_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    std::lock_guard lock(server_.sessions_mu);
    server_.sessions.erase(shared_from_this());
  }

  HttpServer::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
  int tenant_ = -1;  // the authenticated tenant of the current request; -1 when open
  std::chrono::steady_clock::time_point started_;
  std::string endpoint_;  // a generation endpoint, until its answer is recorded
  std::string model_;
  std::chrono::seconds retry_after_{0};
  std::atomic<bool> gone_{false};
  bool answered_ = false;  // the current request's answer was begun
  bool linger_ = false;    // the current request was not read to its end (lingering_close.h)
  bool streaming_ = false;
  bool header_sent_ = false;
  bool writing_ = false;
  bool stream_done_ = false;
  std::deque<std::string> pending_;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (!ec) {
      auto session = std::make_shared<Session>(*this, std::move(socket));
      {
        std::lock_guard lock(sessions_mu);
        sessions.insert(session);
      }
      session->start();
    }
    accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(Host& host, ServerOptions options) {
  auto impl = std::make_unique<Impl>(host, std::move(options));
  beast::error_code ec;
  const auto address = net::ip::make_address(impl->options.address, ec);
  if (ec) {
    return invalid_argument_error(
        fmt::format("server: \"{}\" is not an IP address", impl->options.address));
  }
  const tcp::endpoint endpoint(address, impl->options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable_error(fmt::format("server: cannot listen on {}:{}: {}",
                                         impl->options.address, impl->options.port, ec.message()));
  }
  // Each tenant's own workers of the plugins already active (load through the admin API starts
  // them for plugins loaded later).
  for (const auto& p : host.list_plugins()) {
    if (!p.active || !p.instance.empty()) continue;
    PIO_RETURN_IF_ERROR(impl->activate_for_tenants(p.name).with_context("server"));
  }
  impl->accept();
  Impl* raw = impl.get();
  impl->network = std::thread([raw] { raw->run_network(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::shutdown(std::chrono::milliseconds drain) {
  impl_->draining = true;
  net::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  const auto end = std::chrono::steady_clock::now() + drain;
  while (impl_->in_flight > 0 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void HttpServer::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    std::set<std::shared_ptr<Session>> sessions;
    {
      std::lock_guard lock(impl_->sessions_mu);
      sessions = impl_->sessions;
    }
    for (const auto& s : sessions) s->close();
  });
  // The request threads finish their Host calls (closed sessions cancel their streams), then the
  // network thread runs what they posted and stops.
  impl_->requests.stop();
  impl_->io.stop();
  if (impl_->network.joinable()) impl_->network.join();
  std::lock_guard lock(impl_->sessions_mu);
  impl_->sessions.clear();
}

}  // namespace pio::server
