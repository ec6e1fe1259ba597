#pragma once
// PluginManifest: a plugin folder's plugin_manifest.json, parsed strictly.
//
// Schema (docs/writing-a-plugin.md, "The manifest"); every field is checked, an unknown field is
// refused (a typo must not silently drop a setting):
//   name            string, required: letters, digits, '_' and '-', at most 64 bytes
//   version         string, required
//   abi_version     integer, required: the PIO_PLUGIN_ABI_VERSION the library was built against
//   library         string, required: a file name in the plugin folder (no '/', not "." or "..")
//   sha256          string, required: 64 lowercase hex digits of the library (written by the build)
//   description     string, optional
//   model_family    string, optional
//   default_config  object, optional (default {})
//   capabilities    object, optional: gpu (bool), network (bool), scratch_mb (integer >= 0)
//   resources       object, optional: memory_mb, gpu_memory_mb, disk_mb (integers >= 0)
//
// The one thing a caller gets wrong: a manifest only *asks*. Capabilities and resources are
// requests; the host config's trust level and limits decide what a plugin gets.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "pio/ipc/status.h"

namespace pio::host {

struct PluginCapabilities {
  bool gpu = false;
  bool network = false;
  uint64_t scratch_mb = 0;
};

struct PluginResources {
  uint64_t memory_mb = 0;
  uint64_t gpu_memory_mb = 0;
  uint64_t disk_mb = 0;
};

struct PluginManifest {
  std::string name;
  std::string version;
  uint32_t abi_version = 0;
  std::string library;  // file name inside `directory`
  std::string sha256;   // lowercase hex
  std::string description;
  std::string model_family;
  std::string default_config_json = "{}";  // a JSON object, as text
  PluginCapabilities capabilities;
  PluginResources resources;

  // Filled by load_manifest(): the plugin folder and the manifest file.
  std::filesystem::path directory;
  std::filesystem::path manifest_path;

  std::filesystem::path library_path() const { return directory / library; }
};

// Parses a manifest document. invalid_argument naming `source` and the field:
// `/p/echo/plugin_manifest.json: field "sha256": expected 64 lowercase hex digits`.
Result<PluginManifest> parse_manifest(std::string_view json_text, std::string_view source);

// Reads <plugin_dir>/plugin_manifest.json, parses it and fills directory/manifest_path. The
// library itself is not touched (verify_plugin_library does that).
Result<PluginManifest> load_manifest(const std::filesystem::path& plugin_dir);

// The library exists, is a regular file, and its SHA-256 equals the manifest's: permission_denied
// naming both digests otherwise (a library changed after its manifest was written is refused).
Status verify_plugin_library(const PluginManifest& manifest);

}  // namespace pio::host
