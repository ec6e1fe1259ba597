#include "pio/host/plugin_manifest.h"

#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "internal/json_fields.h"
#include "pio/host/sha256.h"

namespace pio::host {

namespace {

using internal::JsonFields;

bool is_plugin_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_sha256_hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::string> required_string(JsonFields& fields, std::string_view key) {
  PIO_ASSIGN_OR_RETURN(auto value, fields.string(key));
  if (!value.has_value()) return fields.error(key, "required");
  return *value;
}

}  // namespace

Result<PluginManifest> parse_manifest(std::string_view json_text, std::string_view source) {
  PIO_ASSIGN_OR_RETURN(nlohmann::json document, JsonFields::parse(json_text, source));
  PIO_RETURN_IF_ERROR(JsonFields::expect_object(document, source, ""));
  JsonFields fields(document, std::string(source), "");
  PluginManifest m;

  PIO_ASSIGN_OR_RETURN(m.name, required_string(fields, "name"));
  if (!is_plugin_name(m.name)) {
    return fields.error("name",
                        fmt::format("\"{}\": use 1-64 letters, digits, '_' or '-'", m.name));
  }
  PIO_ASSIGN_OR_RETURN(m.version, required_string(fields, "version"));
  if (m.version.empty()) return fields.error("version", "must not be empty");
  PIO_ASSIGN_OR_RETURN(auto abi, fields.unsigned_integer("abi_version", UINT32_MAX));
  if (!abi.has_value()) return fields.error("abi_version", "required");
  m.abi_version = static_cast<uint32_t>(*abi);
  PIO_ASSIGN_OR_RETURN(m.library, required_string(fields, "library"));
  if (m.library.empty() || m.library == "." || m.library == ".." ||
      m.library.find('/') != std::string::npos || m.library.find('\0') != std::string::npos) {
    return fields.error(
        "library", fmt::format("\"{}\" must be a file name inside the plugin folder", m.library));
  }
  PIO_ASSIGN_OR_RETURN(m.sha256, required_string(fields, "sha256"));
  if (!is_sha256_hex(m.sha256)) {
    return fields.error("sha256",
                        "expected 64 lowercase hex digits (the build writes it; was the "
                        "source manifest copied instead of the built one?)");
  }
  PIO_ASSIGN_OR_RETURN(auto description, fields.string("description"));
  m.description = description.value_or("");
  PIO_ASSIGN_OR_RETURN(auto family, fields.string("model_family"));
  m.model_family = family.value_or("");
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* config, fields.object("default_config"));
  if (config != nullptr) m.default_config_json = config->dump();

  PIO_ASSIGN_OR_RETURN(const nlohmann::json* caps, fields.object("capabilities"));
  if (caps != nullptr) {
    JsonFields c(*caps, std::string(source), "capabilities");
    PIO_ASSIGN_OR_RETURN(auto gpu, c.boolean("gpu"));
    PIO_ASSIGN_OR_RETURN(auto network, c.boolean("network"));
    PIO_ASSIGN_OR_RETURN(auto scratch, c.unsigned_integer("scratch_mb"));
    PIO_RETURN_IF_ERROR(c.check_no_unknown());
    m.capabilities = {gpu.value_or(false), network.value_or(false), scratch.value_or(0)};
  }
  PIO_ASSIGN_OR_RETURN(const nlohmann::json* res, fields.object("resources"));
  if (res != nullptr) {
    JsonFields r(*res, std::string(source), "resources");
    PIO_ASSIGN_OR_RETURN(auto memory, r.unsigned_integer("memory_mb"));
    PIO_ASSIGN_OR_RETURN(auto gpu_memory, r.unsigned_integer("gpu_memory_mb"));
    PIO_ASSIGN_OR_RETURN(auto disk, r.unsigned_integer("disk_mb"));
    PIO_RETURN_IF_ERROR(r.check_no_unknown());
    m.resources = {memory.value_or(0), gpu_memory.value_or(0), disk.value_or(0)};
  }
  PIO_RETURN_IF_ERROR(fields.check_no_unknown());
  return m;
}

Result<PluginManifest> load_manifest(const std::filesystem::path& plugin_dir) {
  const std::filesystem::path path = plugin_dir / "plugin_manifest.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found_error(fmt::format("{}: cannot be read", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > (1u << 20)) {
    return invalid_argument_error(fmt::format("{}: larger than 1 MiB", path.string()));
  }
  PIO_ASSIGN_OR_RETURN(PluginManifest manifest, parse_manifest(text.str(), path.string()));
  std::error_code ec;
  manifest.directory = std::filesystem::canonical(plugin_dir, ec);
  if (ec) manifest.directory = std::filesystem::absolute(plugin_dir);
  manifest.manifest_path = manifest.directory / "plugin_manifest.json";
  return manifest;
}

Status verify_plugin_library(const PluginManifest& manifest) {
  const auto library = manifest.library_path();
  std::error_code ec;
  const auto status = std::filesystem::symlink_status(library, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    return not_found_error(
        fmt::format("plugin \"{}\": library {} is missing or not a regular file "
                    "(manifest {})",
                    manifest.name, library.string(), manifest.manifest_path.string()));
  }
  PIO_ASSIGN_OR_RETURN(std::string digest, sha256_file_hex(library));
  if (digest != manifest.sha256) {
    return permission_denied_error(fmt::format(
        "plugin \"{}\": library {} has sha256 {} but its manifest {} says {}; refusing it (rebuild "
        "the plugin so that its manifest is rewritten, or restore the library)",
        manifest.name, library.string(), digest, manifest.manifest_path.string(), manifest.sha256));
  }
  return ok_status();
}

}  // namespace pio::host
