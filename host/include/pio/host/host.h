#pragma once
// pio::Host: the embeddable host. It keeps a registry of plugins (manifests), runs each active
// plugin in its own sandboxed worker under the trust level the HostConfig gives it, supervises
// the workers (restart with backoff, quarantine) and serves the seeds' PluginManager verbs.
//
// Threads: the Host owns one Boost.Asio io_context and one loop thread. Every public method is
// thread-safe and synchronous: it posts its work to the loop and waits for the answer, so many
// caller threads can have requests in flight at once. The exception is the TokenCallback of
// generate_stream / chat, which runs ON the loop thread: keep it short and never call the Host
// from it (such a call fails with failed_precondition instead of deadlocking).
//
// Errors: every verb returns pio::Status / pio::Result; messages name the plugin and what to do.
// A crashed worker ends its in-flight requests with worker_crashed (how it died, its last output
// lines); a request past its deadline ends with deadline_exceeded; a quarantined plugin answers
// failed_precondition until it is deactivated and activated again.
//
// The one thing a caller gets wrong: InferOutputs hold slots of the worker's output ring; keep
// them only as long as needed, since a worker whose ring is full waits for them.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/host/host_config.h"
#include "pio/host/plugin_manifest.h"
#include "pio/host/plugin_registry.h"
#include "pio/host/requests.h"
#include "pio/ipc/status.h"

namespace pio {

namespace host {
struct ActivateOptions {
  // JSON object merged over the manifest's default_config and the host config's "config".
  std::string config_json;
  // Given to the plugin's load_model after initialize; must resolve inside the plugin's
  // model_roots (host config), else activation fails with permission_denied.
  std::optional<std::string> model_path;
};
}  // namespace host

class Host {
 public:
  // Starts the loop thread and the sandbox launcher (cgroup parent). Fails when the launcher
  // cannot be set up (no cgroup access, missing worker or policies).
  static Result<std::unique_ptr<Host>> create(
      host::HostConfig config = host::default_host_config());
  // Kills every worker, waits for them, removes their cgroups and the scratch dir it made.
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // The plugin folders of config().plugin_dirs. Bad manifests and libraries whose sha256 differs
  // are skipped and listed in the report.
  host::DiscoveryReport discover_and_load_plugins();
  host::DiscoveryReport load_plugins_from_directory(const std::filesystem::path& dir);
  Result<host::PluginManifest> register_plugin(const std::filesystem::path& plugin_dir);
  // Every registered plugin with its state (stopped when not active), then its instances.
  std::vector<host::PluginStatus> list_plugins();
  Result<host::PluginStatus> plugin_status(std::string_view name);

  // Spawns the plugin's worker and waits until it is ready (initialize and load_model done).
  Status activate_plugin(std::string_view name, host::ActivateOptions options = {});
  // Another worker of the active plugin `name`, started exactly as its own was (manifest, host
  // settings, config, model path), under the key "<name>@<instance>", which every verb then takes
  // as the plugin's name. For callers that must not share a worker process (the server gives
  // each tenant its own). `instance`: 1-48 letters, digits, '_', '-', '.'.
  Status activate_instance(std::string_view name, std::string_view instance);
  // Stops the worker of `name` (a plugin or "<name>@<instance>") and starts a new one the way
  // it was activated: how an operator brings a quarantined plugin back.
  Status restart_plugin(std::string_view name);
  // Drains in-flight requests, asks the worker to shut down, kills it after the timeout. For
  // "<name>@<instance>" only that instance; for a plugin name, its instances too.
  Status deactivate_plugin(std::string_view name);

  // infer (command "") or execute (a command). Inputs are copied into the worker's input ring.
  Result<host::InferOutputs> execute_plugin(std::string_view name, host::InferRequest request);
  // Text plugins. generate waits for the whole text; generate_stream calls on_chunk per piece
  // (on the loop thread; return false to cancel); chat renders `messages_json` (a JSON array of
  // {"role", "content"}) with the plugin's template.
  Result<host::GenerateResult> generate(std::string_view name, std::string_view prompt,
                                        const host::GenerateOptions& options = {});
  Result<host::GenerateResult> generate_stream(std::string_view name, std::string_view prompt,
                                               const host::GenerateOptions& options,
                                               host::TokenCallback on_chunk);
  Result<host::GenerateResult> chat(std::string_view name, std::string_view messages_json,
                                    const host::GenerateOptions& options = {},
                                    host::TokenCallback on_chunk = {});

  const host::HostConfig& config() const;

  struct Impl;

 private:
  explicit Host(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The process-wide Host for code written against the seeds' `get_plugin_manager()`: created on
// first use with default_host_config() (plugin_dirs from $PIO_PLUGIN_PATH, ':'-separated). When
// it cannot be created, the process stops with the reason (there is nothing to return it to).
Host& get_plugin_manager();

}  // namespace pio
