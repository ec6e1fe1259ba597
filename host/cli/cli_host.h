#pragma once
// How a `pio` subcommand gets its Host: the options every subcommand shares (where the plugins,
// the worker and the policies are, an optional host config file), the options of the one plugin a
// command runs (name, model dir, trust, limits), and the HostConfig built from them.
//
// Defaults are found relative to the pio binary (/proc/self/exe), so build/bin/pio uses the
// build tree's plugins, pio-worker and the repository's policies, and an installed pio the
// install prefix's.
//
// The one thing a caller gets wrong: the model dir becomes the plugin's only model root (the
// sandbox mounts it read-only), so it and the plugin dirs must be readable by the worker's
// unprivileged identity, not only by the user running pio.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pio/host/host.h"
#include "pio/host/host_config.h"
#include "pio/ipc/status.h"

namespace pio::cli {

struct HostOptions {
  std::vector<std::string> plugin_dirs;
  std::string worker;
  std::string policy_dir;
  std::string config_file;
};

struct PluginOptions {
  std::string plugin = "qwen3_0_6b";
  std::string model;
  std::string trust = "low";
  uint64_t memory_mb = 4096;
  uint32_t timeout_s = 600;
  // Set by add_plugin_options: whether the flag was given (a config file's value stands if not).
  CLI::Option* trust_flag = nullptr;
  CLI::Option* memory_flag = nullptr;
  CLI::Option* timeout_flag = nullptr;
};

void add_host_options(CLI::App* app, HostOptions* options);
// `require_model` false: --model may be left out (the command has a default of its own).
void add_plugin_options(CLI::App* app, PluginOptions* options, bool require_model = true);

// The folder pio was started from (resolved through /proc/self/exe).
std::filesystem::path executable_dir();

// The plugin folders to search: --plugin-dir, else the config file's, else <bin>/../plugins.
std::vector<std::filesystem::path> plugin_dirs_for(const HostOptions& options,
                                                   const host::HostConfig& config);

// The config file (or the defaults) with the options applied; `plugin` may be null (no plugin
// is going to run). Fails with not_found when the model dir does not exist.
Result<host::HostConfig> host_config_from(const HostOptions& options, const PluginOptions* plugin);

// A Host with the plugin activated on the model dir. `plugin_config_json` goes to
// ActivateOptions.config_json. Prints "loading ..." / "ready in N ms" to stderr.
class RunningPlugin {
 public:
  static Result<RunningPlugin> start(const HostOptions& options, const PluginOptions& plugin,
                                     std::string plugin_config_json = {});
  RunningPlugin(RunningPlugin&&) = default;
  RunningPlugin& operator=(RunningPlugin&&) = default;
  // Shuts the worker down cleanly (the Host would otherwise kill it).
  ~RunningPlugin();

  Host& host() { return *host_; }
  const std::string& name() const { return name_; }

 private:
  RunningPlugin(std::unique_ptr<Host> host, std::string name)
      : host_(std::move(host)), name_(std::move(name)) {}
  std::unique_ptr<Host> host_;
  std::string name_;
};

}  // namespace pio::cli
