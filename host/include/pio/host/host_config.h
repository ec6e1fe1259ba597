#pragma once
// HostConfig: the operator's configuration of a Host, read from JSON. It, and never a plugin's
// manifest, decides each plugin's trust level, limits and model roots.
//
// Document (every field optional; unknown fields are refused):
// {
//   "plugin_dirs":   ["/srv/pio/plugins"],   // searched by discover_and_load_plugins()
//   "policy_dir":    "/usr/share/pio/policies", // policies/<level>.json; default: see below
//   "worker_path":   "/usr/libexec/pio/pio-worker", // default: see below
//   "scratch_root":  "/var/lib/pio/scratch",  // default: a private dir under $TMPDIR
//   "instance_name": "pio",                   // names the cgroup parent; default pio<pid>
//   "cgroup_base":   "/",                     // where the cgroup parent goes; default: own cgroup
//   "allow_degraded": false,                  // run policies whose kernel features are missing
//   "defaults": PLUGIN_SETTINGS,              // for every plugin
//   "plugins": { "echo": PLUGIN_SETTINGS, ... } // per plugin, over the defaults
//   "server": { ... }                         // the HTTP server's section (tenants, keys):
//                                             // host/server/server_config.h; the Host keeps it
// }
// PLUGIN_SETTINGS:
// {
//   "trust_level": "low" | "medium" | "high" | "maximum",   // default low
//   "model_roots": ["/srv/models/echo"],   // where load_model paths may point
//   "config": { ... },                     // merged over the manifest's default_config
//   "limits": { "memory_mb": N, "pids": N, "cpu_percent": N, "cpu_seconds": N },
//                                          // tighter than the policy's (never looser)
//   "host_network": false,                 // a granted network (high trust, manifest asks) is
//                                          // the host's namespace; else one of its own, no route
//   "request_deadline_ms": 30000,          // a request with no deadline of its own gets this
//   "heartbeat_interval_ms": 1000,         // 0 = no heartbeats
//   "heartbeat_misses": 3,                 // unanswered heartbeats before the worker is killed
//   "start_timeout_ms": 10000,             // spawn to ready (Hello + Initialize + load_model)
//   "shutdown_timeout_ms": 2000,           // Shutdown to exit, then SIGKILL
//   "ring_mb": 4,                          // each tensor ring of the worker's arena
//   "restart": { "max_crashes": 5, "window_ms": 60000,      // more crashes in the window:
//   quarantine
//                "backoff_initial_ms": 100, "backoff_max_ms": 10000 }
// }
//
// Default policy_dir / worker_path: the field, else $PIO_POLICY_DIR / $PIO_WORKER, else the
// build tree this library was built in (while it exists), else the install prefix
// (<prefix>/share/pio/policies, <prefix>/libexec/pio/pio-worker).
//
// The one thing a caller gets wrong: limits here can only tighten the trust level's policy; a
// plugin that needs more must get a higher trust level.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/sandbox/policy.h"

namespace pio::host {

struct RestartPolicy {
  uint32_t max_crashes = 5;
  std::chrono::milliseconds window{60'000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{10'000};
};

struct PluginLimits {
  std::optional<uint64_t> memory_mb;
  std::optional<uint64_t> pids;
  std::optional<uint32_t> cpu_percent;
  std::optional<uint64_t> cpu_seconds;
};

struct PluginSettings {
  sandbox::TrustLevel trust_level = sandbox::TrustLevel::kLow;
  std::vector<std::filesystem::path> model_roots;
  std::string config_json = "{}";  // object, merged over the manifest's default_config
  PluginLimits limits;
  // Where the trust level grants the network and the manifest asks for it: true = the host's
  // network namespace (its routes, and its loopback services such as this server's admin API);
  // false = a namespace of the worker's own, which has no route anywhere.
  bool host_network = false;
  std::chrono::milliseconds request_deadline{30'000};
  std::chrono::milliseconds heartbeat_interval{1'000};
  uint32_t heartbeat_misses = 3;
  std::chrono::milliseconds start_timeout{10'000};
  std::chrono::milliseconds shutdown_timeout{2'000};
  // Bytes of each tensor ring of the worker's arena (host->worker, worker->host).
  uint64_t ring_bytes = 4u << 20;
  RestartPolicy restart;
};

struct HostConfig {
  std::vector<std::filesystem::path> plugin_dirs;
  std::filesystem::path policy_dir;    // resolved (never empty after parse/defaults)
  std::filesystem::path worker_path;   // resolved
  std::filesystem::path scratch_root;  // empty: the Host makes a private one
  std::string instance_name;           // empty: pio<pid>
  std::optional<std::string> cgroup_base;
  bool allow_degraded = false;
  PluginSettings defaults;
  // Raw per-plugin overrides, applied over `defaults` by settings_for().
  std::map<std::string, PluginSettings, std::less<>> plugins;
  // The "server" object as JSON text ("{}" when absent), for the HTTP server to parse.
  std::string server_json = "{}";

  // The settings for plugin `name`: its own entry, or the defaults.
  const PluginSettings& settings_for(std::string_view name) const;
};

// Parses the document above; invalid_argument naming `source` and the field.
Result<HostConfig> parse_host_config(std::string_view json_text, std::string_view source);
Result<HostConfig> load_host_config(const std::filesystem::path& path);
// A config with every default (policy dir and worker path located as described above).
HostConfig default_host_config();

// Where the defaults are looked for (for messages and `pio doctor`).
std::filesystem::path default_policy_dir();
std::filesystem::path default_worker_path();

}  // namespace pio::host
