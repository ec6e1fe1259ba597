#pragma once
// PluginLibrary: a plugin .so loaded with dlopen, its pio_plugin_entry called and the table it
// returned checked against the ABI this build speaks.
//
// The one thing a caller gets wrong: loading runs the library's static constructors, which are
// plugin code. pio-worker loads only after stage 2 of the sandbox is in place; anything else
// that loads a plugin in-process (a benchmark's direct calls) gives the plugin its whole process.

#include <filesystem>
#include <memory>

#include "pio/ipc/status.h"
#include "pio/plugin.h"

namespace pio::sdk {

class PluginLibrary {
 public:
  // failed_precondition with a message naming the library and what is wrong: dlopen's error, no
  // pio_plugin_entry, a NULL table (the plugin does not speak PIO_PLUGIN_ABI_VERSION), a table of
  // another ABI version or smaller than this build's, a required function missing.
  static Result<PluginLibrary> open(const std::filesystem::path& path);
  // Loads the library the open descriptor `fd` holds (through /proc/self/fd/N, so /proc must be
  // mounted): what is mapped is what the descriptor holds, whatever happens to `shown_as` on
  // disk. Messages and path() name `shown_as`. The caller keeps (and may close) `fd`.
  static Result<PluginLibrary> open_descriptor(int fd, const std::filesystem::path& shown_as);

  PluginLibrary(PluginLibrary&& other) noexcept;
  PluginLibrary& operator=(PluginLibrary&& other) noexcept;
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;
  // dlcloses the library; every instance made from api() must have been destroyed first.
  ~PluginLibrary();

  const pio_plugin_api& api() const { return *api_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  static Result<PluginLibrary> load(const char* dlopen_name, const std::filesystem::path& path);
  PluginLibrary(void* handle, const pio_plugin_api* api, std::filesystem::path path)
      : handle_(handle), api_(api), path_(std::move(path)) {}
  void* handle_ = nullptr;
  const pio_plugin_api* api_ = nullptr;
  std::filesystem::path path_;
};

}  // namespace pio::sdk
