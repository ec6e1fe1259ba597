#pragma once
// PluginRegistry: the plugins this host knows about (manifests read and libraries checked), by
// name. Knowing a plugin starts nothing; activation (Host::activate_plugin) does.
//
// The one thing a caller gets wrong: discovery skips what it cannot use rather than failing the
// whole directory; read DiscoveryReport::skipped to see why a plugin is missing. Not thread-safe
// (Host serialises access).

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pio/host/plugin_manifest.h"
#include "pio/ipc/status.h"

namespace pio::host {

struct DiscoveryReport {
  std::vector<std::string> loaded;  // plugin names registered by this call
  std::vector<Status> skipped;      // one per folder that was not registered, naming file and field
};

class PluginRegistry {
 public:
  // Registers the plugin in `plugin_dir` (its plugin_manifest.json and library). A name already
  // registered from another folder is refused with failed_precondition (deactivate and unregister
  // first); the same folder again re-reads it.
  Result<PluginManifest> register_plugin(const std::filesystem::path& plugin_dir);

  // `dir` itself when it holds a plugin_manifest.json, else each of its subfolders that does.
  DiscoveryReport load_plugins_from_directory(const std::filesystem::path& dir);

  Status unregister_plugin(std::string_view name);
  Result<PluginManifest> find(std::string_view name) const;
  std::vector<PluginManifest> list() const;

 private:
  std::map<std::string, PluginManifest, std::less<>> plugins_;
};

}  // namespace pio::host
