// pio inspect PLUGIN: what the host knows about one plugin without running it: its manifest,
// whether its library still has the manifest's digest, whether the registry would take it, and
// what the host config gives it (trust level, limits against that level's policy, model roots).
// With --model it also activates the plugin and prints the plugin's own pio.get_model_info.
//
// The folder is found by reading the manifests itself, not through PluginRegistry: the registry
// skips a plugin whose library digest differs, and that plugin is the one an operator most needs
// to inspect. The registry's verdict is still shown ("registry").

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli_host.h"
#include "command.h"
#include "fmt/format.h"
#include "json_output.h"
#include "pio/host/plugin_manifest.h"
#include "pio/host/plugin_registry.h"
#include "pio/host/sha256.h"
#include "pio/sandbox/policy.h"
#include "terminal_text.h"

namespace pio::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// The folders the registry would read for `dir`: itself when it holds a manifest, else each
// subfolder that does (PluginRegistry::load_plugins_from_directory).
std::vector<fs::path> plugin_folders(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "plugin_manifest.json", ec)) return {dir};
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "plugin_manifest.json", ec)) {
      folders.push_back(entry.path());
    }
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

Result<host::PluginManifest> find_manifest(const std::string& name,
                                           const std::vector<fs::path>& dirs) {
  for (const auto& dir : dirs) {
    for (const auto& folder : plugin_folders(dir)) {
      auto manifest = host::load_manifest(folder);
      if (manifest.ok() && manifest->name == name) return manifest;
    }
  }
  std::string searched;
  for (const auto& d : dirs) searched += (searched.empty() ? "" : ", ") + d.string();
  return not_found_error(fmt::format(
      "no plugin \"{}\" in {} (pio list shows what is there; --plugin-dir adds a folder)", name,
      searched));
}

// A JSON object as text (manifest default_config, host config "config"), as a value to print.
ordered_json json_value(const std::string& text) {
  ordered_json v = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  return v.is_discarded() ? ordered_json(text) : v;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

template <typename T>
std::optional<T> tighter(std::optional<T> a, std::optional<T> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

ordered_json optional_json(const std::optional<uint64_t>& v) {
  return v ? ordered_json(*v) : ordered_json(nullptr);
}

// One limit as the policy sets it, as the host config sets it, and the one that holds (the
// smaller: config limits only tighten, host_config.h).
struct Limit {
  std::string name;
  std::string unit;
  std::optional<uint64_t> policy, config;
  std::optional<uint64_t> effective() const { return tighter(policy, config); }
};

struct InspectCommand {
  HostOptions host;
  PluginOptions plugin;
  bool json = false;
};

Status run_inspect(const InspectCommand& c) {
  // With --model this is the config RunningPlugin::start activates with (pio's own defaults for a
  // plugin it runs applied); without, the host config's own view of the plugin.
  const bool activate = !c.plugin.model.empty();
  PIO_ASSIGN_OR_RETURN(host::HostConfig config,
                       host_config_from(c.host, activate ? &c.plugin : nullptr));
  PIO_ASSIGN_OR_RETURN(host::PluginManifest m, find_manifest(c.plugin.plugin, config.plugin_dirs));

  auto digest = host::sha256_file_hex(m.library_path());
  const bool digest_matches = digest.ok() && *digest == m.sha256;
  host::PluginRegistry registry;
  auto registered = registry.register_plugin(m.directory);

  const host::PluginSettings& s = config.settings_for(m.name);
  const std::string_view trust = sandbox::trust_level_name(s.trust_level);
  auto policy = sandbox::load_policy(config.policy_dir, s.trust_level);
  std::vector<Limit> limits;
  if (policy.ok()) {
    const auto& pc = policy->cgroup;
    limits = {
        {"memory", "MiB",
         pc.memory_bytes ? std::optional<uint64_t>(*pc.memory_bytes >> 20) : std::nullopt,
         s.limits.memory_mb},
        {"pids", "", pc.pids_max, s.limits.pids},
        {"cpu_percent", "%",
         pc.cpu_percent ? std::optional<uint64_t>(*pc.cpu_percent) : std::nullopt,
         s.limits.cpu_percent ? std::optional<uint64_t>(*s.limits.cpu_percent) : std::nullopt},
        {"cpu_seconds", "s", policy->rlimits.cpu_seconds, s.limits.cpu_seconds}};
  }

  // The plugin's own account of itself, from a running worker.
  std::optional<ordered_json> model_info;
  if (activate) {
    PIO_ASSIGN_OR_RETURN(RunningPlugin running, RunningPlugin::start(c.host, c.plugin));
    host::InferRequest request;
    request.command = "pio.get_model_info";
    PIO_ASSIGN_OR_RETURN(host::InferOutputs info,
                         running.host().execute_plugin(running.name(), std::move(request)));
    model_info = json_value(info.json());  // a copy: the worker may still scribble on the ring
  }

  const std::string policy_file = (config.policy_dir / (std::string(trust) + ".json")).string();
  std::vector<std::string> roots;
  for (const auto& r : s.model_roots) roots.push_back(r.string());
  const std::string registry_verdict =
      registered.ok() ? "would load" : "skips it: " + registered.status().message();

  if (c.json) {
    ordered_json limits_json = ordered_json::object();
    for (const Limit& l : limits) {
      limits_json[l.name] = {{"policy", optional_json(l.policy)},
                             {"config", optional_json(l.config)},
                             {"effective", optional_json(l.effective())}};
    }
    ordered_json doc = {
        {"name", m.name},
        {"version", m.version},
        {"abi_version", m.abi_version},
        {"directory", m.directory.string()},
        {"manifest", m.manifest_path.string()},
        {"library", m.library_path().string()},
        {"sha256", m.sha256},
        {"library_sha256", digest.ok() ? ordered_json(*digest) : ordered_json(nullptr)},
        {"digest_matches", digest_matches},
        {"registry", {{"loads", registered.ok()}, {"message", registered.status().message()}}},
        {"model_family", m.model_family},
        {"description", m.description},
        {"default_config", json_value(m.default_config_json)},
        {"capabilities",
         {{"gpu", m.capabilities.gpu},
          {"network", m.capabilities.network},
          {"scratch_mb", m.capabilities.scratch_mb}}},
        {"resources",
         {{"memory_mb", m.resources.memory_mb},
          {"gpu_memory_mb", m.resources.gpu_memory_mb},
          {"disk_mb", m.resources.disk_mb}}},
        {"trust_level", trust},
        {"policy",
         policy.ok() ? ordered_json(policy_file) : ordered_json(policy.status().to_string())},
        {"limits", limits_json},
        {"model_roots", roots},
        {"config", json_value(s.config_json)},
        {"request_deadline_ms", s.request_deadline.count()},
        {"start_timeout_ms", s.start_timeout.count()}};
    if (policy.ok()) {
      doc["policy_grants"] = {
          {"devices", policy->devices.allow},
          {"network",
           policy->network == sandbox::NetworkPolicy::kOnRequest ? "on_request" : "none"}};
    }
    if (model_info) doc["model_info"] = *model_info;
    std::fputs(json_line(doc).c_str(), stdout);
    (void)std::fflush(stdout);
    return ok_status();
  }

  // Values include the plugin's own words (its manifest, its model info from the worker).
  auto row = [](std::string_view key, const std::string& value) {
    fmt::print("{:<18} {}\n", key, terminal_text(value));
  };
  auto yes = [](bool b) { return std::string(b ? "yes" : "no"); };
  row("name", m.name);
  row("version", m.version);
  row("abi_version", std::to_string(m.abi_version));
  row("family", m.model_family);
  row("description", m.description);
  row("manifest", m.manifest_path.string());
  row("library", m.library_path().string());
  row("sha256", m.sha256);
  row("digest", digest_matches ? "matches the library"
                : digest.ok()  ? "MISMATCH: the library's is " + *digest
                               : "cannot be checked: " + digest.status().message());
  row("registry", registry_verdict);
  row("default_config", server::json_text(json_value(m.default_config_json)));
  row("capabilities", fmt::format("gpu {}, network {}, scratch {} MiB", yes(m.capabilities.gpu),
                                  yes(m.capabilities.network), m.capabilities.scratch_mb));
  row("resources",
      fmt::format("memory {} MiB, gpu memory {} MiB, disk {} MiB", m.resources.memory_mb,
                  m.resources.gpu_memory_mb, m.resources.disk_mb));
  row("trust_level", std::string(trust));
  if (policy.ok()) {
    row("policy", policy_file);
    row("policy grants",
        fmt::format("devices [{}], network {}", join(policy->devices.allow),
                    policy->network == sandbox::NetworkPolicy::kOnRequest ? "on request" : "none"));
  } else {
    row("policy", policy.status().to_string());
  }
  auto show = [](const std::optional<uint64_t>& v, const std::string& unit, const char* unset) {
    return v ? fmt::format("{}{}{}", *v, unit.empty() || unit == "%" ? "" : " ", unit)
             : std::string(unset);
  };
  for (const Limit& l : limits) {
    row("limit " + l.name,
        fmt::format("{} (policy {}, config {})", show(l.effective(), l.unit, "unlimited"),
                    show(l.policy, l.unit, "unlimited"), show(l.config, l.unit, "not set")));
  }
  row("model_roots", roots.empty() ? "none (load_model is refused)" : join(roots));
  row("config", server::json_text(json_value(s.config_json)));
  row("deadlines", fmt::format("request {} ms, start {} ms", s.request_deadline.count(),
                               s.start_timeout.count()));
  if (model_info) row("model_info", server::json_text(*model_info));
  (void)std::fflush(stdout);
  return ok_status();
}

}  // namespace

void add_inspect_command(CLI::App& app, std::vector<Command>* commands) {
  CLI::App* sub = app.add_subcommand(
      "inspect", "Show one plugin: manifest, digest check, trust level, limits, model roots");
  sub->footer(
      "Without --model nothing runs: the manifest, the library's digest, the registry's verdict "
      "and what the host config (--config) gives the plugin. With --model the plugin is also "
      "activated and its own pio.get_model_info printed; the settings shown are then the ones "
      "it ran with. Exit 2 when no plugin of that name is in the plugin folders.");
  auto c = std::make_shared<InspectCommand>();
  add_host_options(sub, &c->host);
  add_plugin_options(sub, &c->plugin);
  // The plugin is the positional argument here, and --model is what starts it: the run options
  // only mean something with it.
  sub->remove_option(sub->get_option("--plugin"));
  CLI::Option* model = sub->get_option("--model");
  model->required(false)->description(
      "Also activate the plugin on this model dir and print its get_model_info");
  for (CLI::Option* o : {c->plugin.trust_flag, c->plugin.memory_flag, c->plugin.timeout_flag}) {
    o->needs(model);
  }
  sub->add_option("plugin", c->plugin.plugin, "Name of the plugin (as pio list shows it)")
      ->required();
  sub->add_flag("--json", c->json, "Print one JSON document instead of the table");
  commands->push_back({sub, [c] { return run_inspect(*c); }});
}

}  // namespace pio::cli
