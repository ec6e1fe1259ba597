#include "pio/host/host_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "internal/json_fields.h"

namespace pio::host {

namespace {

using internal::JsonFields;
using std::chrono::milliseconds;

std::filesystem::path first_existing(std::initializer_list<std::filesystem::path> candidates) {
  std::error_code ec;
  for (const auto& c : candidates) {
    if (!c.empty() && std::filesystem::exists(c, ec)) return c;
  }
  return *(candidates.end() - 1);
}

std::filesystem::path from_env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::filesystem::path(value) : std::filesystem::path();
}

// The trust level named by "trust_level", or `fallback` when the field is absent.
Result<sandbox::TrustLevel> parse_trust_level(JsonFields& fields, sandbox::TrustLevel fallback) {
  PIO_ASSIGN_OR_RETURN(auto name, fields.string("trust_level"));
  if (!name.has_value()) return fallback;
  for (auto level : {sandbox::TrustLevel::kLow, sandbox::TrustLevel::kMedium,
                     sandbox::TrustLevel::kHigh, sandbox::TrustLevel::kMaximum}) {
    if (*name == sandbox::trust_level_name(level)) return level;
  }
  return fields.error("trust_level",
                      fmt::format("\"{}\": expected low, medium, high or maximum", *name));
}

Status read_ms(JsonFields& fields, std::string_view key, milliseconds* out) {
  PIO_ASSIGN_OR_RETURN(auto value, fields.unsigned_integer(key, 24ull * 3600 * 1000));
  if (value.has_value()) *out = milliseconds(*value);
  return ok_status();
}

// Reads PLUGIN_SETTINGS over `base` (the defaults).
Result<PluginSettings> parse_settings(const nlohmann::json& object, const std::string& source,
                                      const std::string& path, const PluginSettings& base) {
  JsonFields fields(object, source, path);
  PluginSettings s = base;
  PIO_ASSIGN_OR_RETURN(s.trust_level, parse_trust_level(fields, base.trust_level));
  PIO_ASSIGN_OR_RETURN(auto roots, fields.string_array("model_roots"));
  if (roots.has_value()) {
    s.model_roots.clear();
    for (size_t i = 0; i < roots->size(); ++i) {
      std::filesystem::path root((*roots)[i]);
      if (!root.is_absolute()) {
        return fields.error(fmt::format("model_roots[{}]", i),
                            fmt::format("\"{}\" is not absolute", root.string()));
      }
      s.model_roots.push_back(root);
    }
  }
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* config, fields.object("config"));
  if (config != nullptr) s.config_json = config->dump();
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* limits, fields.object("limits"));
  if (limits != nullptr) {
    JsonFields l(*limits, source, fields.field_path("limits"));
    PIO_ASSIGN_OR_RETURN(auto memory, l.unsigned_integer("memory_mb", 1ull << 30));
    PIO_ASSIGN_OR_RETURN(auto pids, l.unsigned_integer("pids", 1u << 22));
    PIO_ASSIGN_OR_RETURN(auto cpu, l.unsigned_integer("cpu_percent", 100'000));
    PIO_ASSIGN_OR_RETURN(auto cpu_seconds, l.unsigned_integer("cpu_seconds"));
    PIO_RETURN_IF_ERROR(l.check_no_unknown());
    if (memory) s.limits.memory_mb = *memory;
    if (pids) s.limits.pids = *pids;
    if (cpu) s.limits.cpu_percent = static_cast<uint32_t>(*cpu);
    if (cpu_seconds) s.limits.cpu_seconds = *cpu_seconds;
  }
  PIO_RETURN_IF_ERROR(read_ms(fields, "request_deadline_ms", &s.request_deadline));
  PIO_RETURN_IF_ERROR(read_ms(fields, "heartbeat_interval_ms", &s.heartbeat_interval));
  PIO_ASSIGN_OR_RETURN(auto misses, fields.unsigned_integer("heartbeat_misses", 1000));
  if (misses) {
    if (*misses == 0) return fields.error("heartbeat_misses", "must be at least 1");
    s.heartbeat_misses = static_cast<uint32_t>(*misses);
  }
  PIO_ASSIGN_OR_RETURN(auto host_network, fields.boolean("host_network"));
  if (host_network) s.host_network = *host_network;
  PIO_RETURN_IF_ERROR(read_ms(fields, "start_timeout_ms", &s.start_timeout));
  PIO_RETURN_IF_ERROR(read_ms(fields, "shutdown_timeout_ms", &s.shutdown_timeout));
  PIO_ASSIGN_OR_RETURN(auto ring_mb, fields.unsigned_integer("ring_mb", 4096));
  if (ring_mb) {
    if (*ring_mb == 0) return fields.error("ring_mb", "must be at least 1");
    s.ring_bytes = *ring_mb << 20;
  }
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* restart, fields.object("restart"));
  if (restart != nullptr) {
    JsonFields r(*restart, source, fields.field_path("restart"));
    PIO_ASSIGN_OR_RETURN(auto max_crashes, r.unsigned_integer("max_crashes", 1'000'000));
    if (max_crashes) {
      if (*max_crashes == 0) return r.error("max_crashes", "must be at least 1");
      s.restart.max_crashes = static_cast<uint32_t>(*max_crashes);
    }
    PIO_RETURN_IF_ERROR(read_ms(r, "window_ms", &s.restart.window));
    PIO_RETURN_IF_ERROR(read_ms(r, "backoff_initial_ms", &s.restart.backoff_initial));
    PIO_RETURN_IF_ERROR(read_ms(r, "backoff_max_ms", &s.restart.backoff_max));
    PIO_RETURN_IF_ERROR(r.check_no_unknown());
    if (s.restart.backoff_max < s.restart.backoff_initial) {
      return r.error("backoff_max_ms", "must not be below backoff_initial_ms");
    }
  }
  PIO_RETURN_IF_ERROR(fields.check_no_unknown());
  return s;
}

bool is_instance_name(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::filesystem::path default_policy_dir() {
  return first_existing(
      {from_env("PIO_POLICY_DIR"), PIO_HOST_BUILD_POLICY_DIR, PIO_HOST_INSTALL_POLICY_DIR});
}

std::filesystem::path default_worker_path() {
  return first_existing(
      {from_env("PIO_WORKER"), PIO_HOST_BUILD_WORKER_PATH, PIO_HOST_INSTALL_WORKER_PATH});
}

const PluginSettings& HostConfig::settings_for(std::string_view name) const {
  auto it = plugins.find(name);
  return it != plugins.end() ? it->second : defaults;
}

HostConfig default_host_config() {
  HostConfig config;
  config.policy_dir = default_policy_dir();
  config.worker_path = default_worker_path();
  return config;
}

Result<HostConfig> parse_host_config(std::string_view json_text, std::string_view source) {
  PIO_ASSIGN_OR_RETURN(nlohmann::json document, JsonFields::parse(json_text, source));
  PIO_RETURN_IF_ERROR(JsonFields::expect_object(document, source, ""));
  const std::string src(source);
  JsonFields fields(document, src, "");
  HostConfig config = default_host_config();

  PIO_ASSIGN_OR_RETURN(auto dirs, fields.string_array("plugin_dirs"));
  if (dirs) config.plugin_dirs.assign(dirs->begin(), dirs->end());
  PIO_ASSIGN_OR_RETURN(auto policy_dir, fields.string("policy_dir"));
  if (policy_dir) config.policy_dir = *policy_dir;
  PIO_ASSIGN_OR_RETURN(auto worker, fields.string("worker_path"));
  if (worker) {
    if (!std::filesystem::path(*worker).is_absolute()) {
      return fields.error("worker_path", fmt::format("\"{}\" is not absolute", *worker));
    }
    config.worker_path = *worker;
  }
  PIO_ASSIGN_OR_RETURN(auto scratch, fields.string("scratch_root"));
  if (scratch) config.scratch_root = *scratch;
  PIO_ASSIGN_OR_RETURN(auto instance, fields.string("instance_name"));
  if (instance) {
    if (!is_instance_name(*instance)) {
      return fields.error(
          "instance_name",
          fmt::format("\"{}\": use 1-48 letters, digits, '_', '-' or '.'", *instance));
    }
    config.instance_name = *instance;
  }
  PIO_ASSIGN_OR_RETURN(auto cgroup_base, fields.string("cgroup_base"));
  config.cgroup_base = cgroup_base;
  PIO_ASSIGN_OR_RETURN(auto degraded, fields.boolean("allow_degraded"));
  config.allow_degraded = degraded.value_or(false);
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* defaults, fields.object("defaults"));
  if (defaults != nullptr) {
    PIO_ASSIGN_OR_RETURN(config.defaults,
                         parse_settings(*defaults, src, "defaults", PluginSettings{}));
  }
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* plugins, fields.object("plugins"));
  if (plugins != nullptr) {
    for (const auto& [name, value] : plugins->items()) {
      const std::string path = fmt::format("plugins.{}", name);
      PIO_RETURN_IF_ERROR(JsonFields::expect_object(value, src, path));
      PIO_ASSIGN_OR_RETURN(auto settings, parse_settings(value, src, path, config.defaults));
      config.plugins.emplace(name, std::move(settings));
    }
  }
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* server, fields.object("server"));
  if (server != nullptr) config.server_json = server->dump();
  PIO_RETURN_IF_ERROR(fields.check_no_unknown());
  return config;
}

Result<HostConfig> load_host_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found_error(fmt::format("host config {} cannot be read", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_host_config(text.str(), path.string());
}

}  // namespace pio::host
