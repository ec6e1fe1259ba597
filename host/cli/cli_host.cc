#include "cli_host.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "fmt/format.h"

namespace pio::cli {

namespace fs = std::filesystem;

namespace {

fs::path first_existing(std::initializer_list<fs::path> candidates) {
  std::error_code ec;
  for (const auto& c : candidates) {
    if (fs::exists(c, ec)) return c.lexically_normal();
  }
  return {};
}

Result<sandbox::TrustLevel> trust_level_named(std::string_view name) {
  for (auto level : {sandbox::TrustLevel::kLow, sandbox::TrustLevel::kMedium,
                     sandbox::TrustLevel::kHigh, sandbox::TrustLevel::kMaximum}) {
    if (name == sandbox::trust_level_name(level)) return level;
  }
  return invalid_argument_error(
      fmt::format("--trust \"{}\": expected low, medium, high or maximum", name));
}

// The settings of the plugin a command runs. A flag always wins; a value the flag did not set
// comes from the config file when there is one (so a file can tighten limits), else from pio's
// defaults, which suit a model on a workstation: libtorch wants threads and memory that a
// tenant's plugin at low trust would not get (the policy still caps them: limits only tighten).
Status apply_plugin_options(const PluginOptions& p, bool from_file, const fs::path& model,
                            host::HostConfig* config) {
  host::PluginSettings s = config->settings_for(p.plugin);
  if (!from_file || p.trust_flag->count() > 0) {
    PIO_ASSIGN_OR_RETURN(s.trust_level, trust_level_named(p.trust));
  }
  if (!s.limits.memory_mb || p.memory_flag->count() > 0) s.limits.memory_mb = p.memory_mb;
  if (!s.limits.pids) s.limits.pids = 128;
  if (!s.limits.cpu_percent) s.limits.cpu_percent = 200;
  if (!from_file || p.timeout_flag->count() > 0) {
    // A CPU generation of a few hundred tokens, or loading a checkpoint, easily passes the
    // Host's defaults (30 s a request, 10 s to start).
    s.request_deadline = std::chrono::seconds(p.timeout_s);
    s.start_timeout = std::chrono::seconds(p.timeout_s);
  }
  s.model_roots = {model};
  config->plugins[p.plugin] = std::move(s);
  return ok_status();
}

}  // namespace

void add_host_options(CLI::App* app, HostOptions* o) {
  app->add_option("--plugin-dir", o->plugin_dirs,
                  "Folder of plugin folders, or one plugin folder (repeatable; default: "
                  "<bin>/../plugins)")
      ->allow_extra_args(false)
      ->group("Host");
  app->add_option("--worker", o->worker, "pio-worker to run plugins in (default: beside pio)")
      ->group("Host");
  app->add_option("--policy-dir", o->policy_dir,
                  "Folder of the sandbox policies <level>.json (default: the repository's or the "
                  "install prefix's)")
      ->group("Host");
  app->add_option("--config", o->config_file, "Host config JSON (see host_config.h)")
      ->check(CLI::ExistingFile)
      ->group("Host");
}

void add_plugin_options(CLI::App* app, PluginOptions* o, bool require_model) {
  app->add_option("--plugin", o->plugin, "Plugin to run")->capture_default_str()->group("Plugin");
  auto* model =
      app->add_option("--model", o->model, "Model directory (the plugin's only model root)")
          ->group("Plugin");
  if (require_model) model->required();
  o->trust_flag = app->add_option("--trust", o->trust, "Trust level: the sandbox policy")
                      ->check(CLI::IsMember({"low", "medium", "high", "maximum"}))
                      ->capture_default_str()
                      ->group("Plugin");
  o->memory_flag = app->add_option("--memory-mb", o->memory_mb,
                                   "Memory limit of the plugin's worker (the policy may cap it)")
                       ->check(CLI::Range(uint64_t{16}, uint64_t{1} << 30))
                       ->capture_default_str()
                       ->group("Plugin");
  o->timeout_flag =
      app->add_option("--timeout", o->timeout_s, "Seconds a model load or one request may take")
          ->check(CLI::Range(1u, 24u * 3600))
          ->capture_default_str()
          ->group("Plugin");
}

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path(ec) : exe.parent_path();
}

std::vector<fs::path> plugin_dirs_for(const HostOptions& options, const host::HostConfig& config) {
  if (!options.plugin_dirs.empty()) {
    return std::vector<fs::path>(options.plugin_dirs.begin(), options.plugin_dirs.end());
  }
  if (!config.plugin_dirs.empty()) return config.plugin_dirs;
  return {(executable_dir() / ".." / "plugins").lexically_normal()};
}

Result<host::HostConfig> host_config_from(const HostOptions& options, const PluginOptions* plugin) {
  const bool from_file = !options.config_file.empty();
  host::HostConfig config;
  if (from_file) {
    PIO_ASSIGN_OR_RETURN(config, host::load_host_config(options.config_file));
  } else {
    config = host::default_host_config();
    // Relative to this binary first: a pio copied or installed elsewhere than the tree the host
    // library was built in still finds its own worker and policies. $PIO_WORKER and
    // $PIO_POLICY_DIR (honoured by default_host_config) still win.
    const fs::path bin = executable_dir();
    if (std::getenv("PIO_WORKER") == nullptr) {
      fs::path worker =
          first_existing({bin / "pio-worker", bin / ".." / "libexec" / "pio" / "pio-worker"});
      if (!worker.empty()) config.worker_path = worker;
    }
    if (std::getenv("PIO_POLICY_DIR") == nullptr) {
      fs::path policies = first_existing(
          {bin / ".." / ".." / "policies", bin / ".." / "share" / "pio" / "policies"});
      if (!policies.empty()) config.policy_dir = policies;
    }
  }
  if (!options.worker.empty()) config.worker_path = options.worker;
  if (!options.policy_dir.empty()) config.policy_dir = options.policy_dir;
  config.plugin_dirs = plugin_dirs_for(options, config);
  if (plugin == nullptr) return config;

  std::error_code ec;
  const fs::path model = fs::canonical(plugin->model, ec);
  if (ec) return not_found_error(fmt::format("model dir \"{}\": {}", plugin->model, ec.message()));
  if (!fs::is_directory(model, ec)) {
    return invalid_argument_error(
        fmt::format("model dir \"{}\" is not a directory", plugin->model));
  }
  PIO_RETURN_IF_ERROR(apply_plugin_options(*plugin, from_file, model, &config));
  return config;
}

Result<RunningPlugin> RunningPlugin::start(const HostOptions& options, const PluginOptions& plugin,
                                           std::string plugin_config_json) {
  PIO_ASSIGN_OR_RETURN(host::HostConfig config, host_config_from(options, &plugin));
  const fs::path model = config.settings_for(plugin.plugin).model_roots.front();
  const std::vector<fs::path> dirs = config.plugin_dirs;
  PIO_ASSIGN_OR_RETURN(std::unique_ptr<Host> host, Host::create(std::move(config)));

  const host::DiscoveryReport report = host->discover_and_load_plugins();
  if (std::find(report.loaded.begin(), report.loaded.end(), plugin.plugin) == report.loaded.end()) {
    std::string searched;
    for (const auto& d : dirs) searched += (searched.empty() ? "" : ", ") + d.string();
    std::string skipped;
    for (const auto& s : report.skipped) skipped += "\n  skipped: " + s.message();
    return not_found_error(
        fmt::format("no plugin \"{}\" in {} (pio list shows what is there; "
                    "--plugin-dir adds a folder){}",
                    plugin.plugin, searched, skipped));
  }

  // On a terminal the two messages share a line; in a log they are two plain lines.
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  std::fprintf(stderr, "loading %s from %s...%s", plugin.plugin.c_str(), model.c_str(),
               tty ? " " : "\n");
  (void)std::fflush(stderr);
  const auto started = std::chrono::steady_clock::now();
  host::ActivateOptions activate;
  activate.config_json = std::move(plugin_config_json);
  activate.model_path = model.string();
  if (Status s = host->activate_plugin(plugin.plugin, std::move(activate)); !s.ok()) {
    if (tty) std::fputs("failed\n", stderr);
    return s;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  std::fprintf(stderr, "ready in %lld ms\n", static_cast<long long>(ms.count()));
  return RunningPlugin(std::move(host), plugin.plugin);
}

RunningPlugin::~RunningPlugin() {
  if (host_ != nullptr) host_->deactivate_plugin(name_).ignore();
}

}  // namespace pio::cli
