// pio serve: the OpenAI-compatible HTTP server (host/server) over one plugin in its sandboxed
// worker, until SIGINT or SIGTERM; then it stops accepting, lets the requests in flight finish
// (--drain-seconds) and shuts the worker down. Without --model it serves the embedded default:
// qwen3_0_6b on the checkpoint scripts/run.sh writes (<build>/models/qwen3-small-random), on
// 127.0.0.1:8000.

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "cli_host.h"
#include "command.h"
#include "http_server.h"
#include "interrupt.h"

namespace pio::cli {

namespace {

struct ServeCommand {
  HostOptions host;
  PluginOptions plugin;
  std::string address = "127.0.0.1";
  uint16_t port = 8000;
  size_t max_body_bytes = 4u << 20;
  uint32_t max_tokens = 8192;
  uint32_t drain_seconds = 30;
};

// The embedded default: the checkpoint scripts/run.sh writes into the build tree, served by
// qwen3_0_6b on 127.0.0.1:8000.
std::filesystem::path default_model_dir() {
  return executable_dir().parent_path() / "models" / "qwen3-small-random";
}

Status run_serve(const ServeCommand& command) {
  ServeCommand c = command;
  if (c.plugin.model.empty()) {
    const std::filesystem::path model = default_model_dir();
    if (!std::filesystem::exists(model / "config.json")) {
      return invalid_argument_error(fmt::format(
          "no --model given, and the default checkpoint {} does not exist (bash scripts/run.sh "
          "writes it; or pass --model DIR of a Hugging Face checkpoint)",
          model.string()));
    }
    c.plugin.model = model.string();
  }
  PIO_ASSIGN_OR_RETURN(RunningPlugin running, RunningPlugin::start(c.host, c.plugin));
  server::ServerOptions options;
  options.address = c.address;
  options.port = c.port;
  options.max_body_bytes = c.max_body_bytes;
  options.limits.max_tokens = c.max_tokens;
  // Tenants, shared plugins and admin keys come from the host config's "server" section
  // (--config); none: an open server.
  PIO_ASSIGN_OR_RETURN(
      server::ServerConfig config,
      server::parse_server_config(running.host().config().server_json,
                                  c.host.config_file.empty() ? "host config" : c.host.config_file));
  options.tenants = std::move(config.tenants);
  options.shared_plugins = std::move(config.shared_plugins);
  options.admin_keys = std::move(config.admin_keys);
  if (options.tenants.empty() && c.address != "127.0.0.1" && c.address != "::1") {
    std::fprintf(stderr,
                 "pio serve: warning: no tenants are configured, so anyone who can reach %s may "
                 "call the API (add a \"server\": {\"tenants\": ...} section to --config)\n",
                 c.address.c_str());
  }
  PIO_ASSIGN_OR_RETURN(auto server, server::HttpServer::start(running.host(), options));
  std::printf("pio serve: %s on http://%s:%u/v1 (Ctrl-C stops)\n", running.name().c_str(),
              c.address.c_str(), server->port());
  std::printf(
      "try:\n  curl -s http://%s:%u/v1/chat/completions -H 'Content-Type: application/json' "
      "-d '{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
      "\"max_tokens\": 32}'\n",
      c.address.c_str(), server->port(), running.name().c_str());
  (void)std::fflush(stdout);
  interrupt::arm();
  while (!interrupt::cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  interrupt::disarm();
  std::fprintf(stderr, "pio serve: stopping (streams in flight get up to %u s to finish)\n",
               c.drain_seconds);
  server->shutdown(std::chrono::seconds(c.drain_seconds));
  return ok_status();
}

}  // namespace

void add_serve_command(CLI::App& app, std::vector<Command>* commands) {
  auto c = std::make_shared<ServeCommand>();
  CLI::App* sub = app.add_subcommand(
      "serve", "Serve a plugin over the OpenAI-compatible HTTP API (/v1/chat/completions, ...)");
  add_host_options(sub, &c->host);
  add_plugin_options(sub, &c->plugin, /*require_model=*/false);
  sub->add_option("--address", c->address, "Address to listen on")->capture_default_str();
  sub->add_option("--port", c->port, "Port to listen on (0: any free port)")->capture_default_str();
  sub->add_option("--max-body-bytes", c->max_body_bytes, "Largest request body (413 above)")
      ->capture_default_str();
  sub->add_option("--max-tokens-limit", c->max_tokens, "Largest max_tokens a request may ask")
      ->capture_default_str();
  sub->add_option("--drain-seconds", c->drain_seconds,
                  "On SIGTERM/SIGINT, how long requests in flight may take to finish")
      ->capture_default_str();
  commands->push_back({sub, [c] { return run_serve(*c); }});
}

}  // namespace pio::cli
