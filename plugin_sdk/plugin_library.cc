#include "pio/plugin_sdk/plugin_library.h"

#include <dlfcn.h>

#include <cstddef>
#include <utility>

#include "fmt/format.h"

namespace pio::sdk {

namespace {

// The size of the table as ABI version 1 first defined it (up to chat_completion); a plugin may
// be built with a newer header (a larger table) but never with a smaller one.
constexpr size_t kMinApiSize = offsetof(pio_plugin_api, capabilities);

Status check_api(const std::filesystem::path& path, const pio_plugin_api* api) {
  const std::string lib = path.string();
  if (api == nullptr) {
    return failed_precondition_error(fmt::format(
        "plugin {}: pio_plugin_entry({}) returned NULL: the plugin does not speak plugin ABI "
        "version {}; rebuild it against this pio/plugin.h",
        lib, PIO_PLUGIN_ABI_VERSION, PIO_PLUGIN_ABI_VERSION));
  }
  if (api->abi_version != PIO_PLUGIN_ABI_VERSION || api->struct_size < kMinApiSize) {
    return failed_precondition_error(fmt::format(
        "plugin {}: built for plugin ABI version {} (table of {} bytes), this worker speaks "
        "version {} (table of {} bytes); rebuild the plugin against this pio/plugin.h",
        lib, api->abi_version, api->struct_size, PIO_PLUGIN_ABI_VERSION, kMinApiSize));
  }
  const char* missing = nullptr;
  if (api->create == nullptr)
    missing = "create";
  else if (api->destroy == nullptr)
    missing = "destroy";
  else if (api->initialize == nullptr)
    missing = "initialize";
  else if (api->load_model == nullptr)
    missing = "load_model";
  else if (api->infer == nullptr)
    missing = "infer";
  else if (api->cleanup == nullptr)
    missing = "cleanup";
  if (missing != nullptr) {
    return failed_precondition_error(
        fmt::format("plugin {}: its table has no {} function, which is required", lib, missing));
  }
  if (api->name == nullptr || api->name[0] == '\0') {
    return failed_precondition_error(fmt::format("plugin {}: its table has no name", lib));
  }
  return ok_status();
}

}  // namespace

Result<PluginLibrary> PluginLibrary::open(const std::filesystem::path& path) {
  return load(path.c_str(), path);
}

Result<PluginLibrary> PluginLibrary::open_descriptor(int fd,
                                                     const std::filesystem::path& shown_as) {
  const std::string name = fmt::format("/proc/self/fd/{}", fd);
  return load(name.c_str(), shown_as);
}

Result<PluginLibrary> PluginLibrary::load(const char* dlopen_name,
                                          const std::filesystem::path& path) {
  // RTLD_LOCAL: a plugin's symbols never resolve another plugin's or the worker's references.
  void* handle = dlopen(dlopen_name, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return failed_precondition_error(
        fmt::format("plugin {}: dlopen failed: {}", path.string(), why ? why : "unknown error"));
  }
  auto entry = reinterpret_cast<pio_plugin_entry_fn>(dlsym(handle, "pio_plugin_entry"));
  if (entry == nullptr) {
    dlclose(handle);
    return failed_precondition_error(fmt::format(
        "plugin {}: it exports no pio_plugin_entry (is PIO_PLUGIN(Class) in one of its files?)",
        path.string()));
  }
  const pio_plugin_api* api = entry(PIO_PLUGIN_ABI_VERSION);
  Status status = check_api(path, api);
  if (!status.ok()) {
    dlclose(handle);
    return status;
  }
  return PluginLibrary(handle, api, path);
}

PluginLibrary::PluginLibrary(PluginLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      api_(std::exchange(other.api_, nullptr)),
      path_(std::move(other.path_)) {}

PluginLibrary& PluginLibrary::operator=(PluginLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    api_ = std::exchange(other.api_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

PluginLibrary::~PluginLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

}  // namespace pio::sdk
