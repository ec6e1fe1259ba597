#include "pio/host/plugin_registry.h"

#include <algorithm>

#include "fmt/format.h"

namespace pio::host {

Result<PluginManifest> PluginRegistry::register_plugin(const std::filesystem::path& plugin_dir) {
  PIO_ASSIGN_OR_RETURN(PluginManifest manifest, load_manifest(plugin_dir));
  PIO_RETURN_IF_ERROR(verify_plugin_library(manifest));
  auto it = plugins_.find(manifest.name);
  if (it != plugins_.end() && it->second.directory != manifest.directory) {
    return failed_precondition_error(
        fmt::format("plugin \"{}\" from {} is already registered from {}; rename one of them",
                    manifest.name, manifest.directory.string(), it->second.directory.string()));
  }
  plugins_[manifest.name] = manifest;
  return manifest;
}

DiscoveryReport PluginRegistry::load_plugins_from_directory(const std::filesystem::path& dir) {
  DiscoveryReport report;
  std::error_code ec;
  std::vector<std::filesystem::path> folders;
  if (std::filesystem::exists(dir / "plugin_manifest.json", ec)) {
    folders.push_back(dir);
  } else {
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
      report.skipped.push_back(
          not_found_error(fmt::format("plugin directory {}: {}", dir.string(), ec.message())));
      return report;
    }
    for (const auto& entry : it) {
      if (entry.is_directory(ec) &&
          std::filesystem::exists(entry.path() / "plugin_manifest.json", ec)) {
        folders.push_back(entry.path());
      }
    }
    std::sort(folders.begin(), folders.end());
  }
  for (const auto& folder : folders) {
    auto registered = register_plugin(folder);
    if (registered.ok()) {
      report.loaded.push_back(registered->name);
    } else {
      report.skipped.push_back(registered.status());
    }
  }
  return report;
}

Status PluginRegistry::unregister_plugin(std::string_view name) {
  auto it = plugins_.find(name);
  if (it == plugins_.end())
    return not_found_error(fmt::format("plugin \"{}\" is not registered", name));
  plugins_.erase(it);
  return ok_status();
}

Result<PluginManifest> PluginRegistry::find(std::string_view name) const {
  auto it = plugins_.find(name);
  if (it == plugins_.end()) {
    return not_found_error(
        fmt::format("plugin \"{}\" is not registered (register_plugin or "
                    "discover_and_load_plugins first)",
                    name));
  }
  return it->second;
}

std::vector<PluginManifest> PluginRegistry::list() const {
  std::vector<PluginManifest> out;
  for (const auto& [name, manifest] : plugins_) out.push_back(manifest);
  return out;
}

}  // namespace pio::host
