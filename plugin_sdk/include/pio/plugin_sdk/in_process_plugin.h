#pragma once
// InProcessPlugin: a plugin library loaded into this process and called directly through its C
// ABI, with the same services pio-worker gives it, over private memory instead of the shared
// ring. For benchmarks that measure what the process boundary costs (the same plugin code, called
// without a worker) and for testing a plugin's own logic.
//
// The one thing a caller gets wrong: there is no sandbox here. The plugin gets this whole process
// (its static constructors run at load); never load a plugin you do not trust this way. Not
// thread-safe: one caller at a time, like the worker's executor.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/tensor_view.h"
#include "pio/plugin.h"
#include "pio/plugin_sdk/plugin_library.h"

namespace pio::sdk {

namespace worker {
class OutputRing;
}

class InProcessPlugin {
 public:
  // An output tensor; `bytes` lies in this object's private output memory and stays valid until
  // the next call.
  struct Output {
    std::string name;
    wire::DType dtype = wire::DType::F32;
    ipc::TensorShape shape;
    std::span<const std::byte> bytes;
  };
  struct Answer {
    std::vector<Output> outputs;
    std::optional<std::string> json;
  };
  using TokenCallback = std::function<bool(std::span<const int32_t> ids, std::string_view text)>;

  // Loads `library` (PluginLibrary::open), creates the instance and initializes it with
  // `config_json`. `output_bytes` is the size of the private output memory (the ring's stand-in).
  static Result<std::unique_ptr<InProcessPlugin>> load(const std::filesystem::path& library,
                                                       std::string_view config_json = "{}",
                                                       size_t output_bytes = 16u << 20);
  ~InProcessPlugin();  // cleanup, destroy, dlclose
  InProcessPlugin(const InProcessPlugin&) = delete;
  InProcessPlugin& operator=(const InProcessPlugin&) = delete;

  const pio_plugin_api& api() const { return library_.api(); }

  // command "" or "infer": the plugin's infer; any other: its execute. Outputs of the previous
  // call are released first.
  Result<Answer> infer(std::string_view command, std::string_view params_json,
                       std::span<const pio_tensor_view> inputs);
  // load_model on the directory or file `path` (opened here, as the worker opens it).
  Status load_model(const std::filesystem::path& path, std::string_view config_json = "{}");

  // What generate and chat pass as the request's sampling parameters.
  struct Sampling {
    uint32_t max_tokens = 16;
    float temperature = 1.0f;
    int32_t top_k = 0;
    float top_p = 1.0f;
    std::optional<uint64_t> seed;
  };
  // generate_text on `prompt`; `on_tokens` returns false to cancel.
  Result<pio_generate_result> generate(std::string_view prompt, const Sampling& sampling,
                                       const TokenCallback& on_tokens);
  Result<pio_generate_result> generate(std::string_view prompt, uint32_t max_tokens,
                                       const TokenCallback& on_tokens) {
    return generate(prompt, Sampling{.max_tokens = max_tokens}, on_tokens);
  }
  // chat_completion on `messages_json` (what Host::chat sends).
  Result<pio_generate_result> chat(std::string_view messages_json, const Sampling& sampling,
                                   const TokenCallback& on_tokens);

 private:
  InProcessPlugin(PluginLibrary library, size_t output_bytes);
  void release_outputs();
  Result<pio_generate_result> run_generation(bool chat, std::string_view text,
                                             const Sampling& sampling,
                                             const TokenCallback& on_tokens);

  PluginLibrary library_;
  pio_plugin* plugin_ = nullptr;
  std::vector<std::byte> memory_;
  std::byte* base_ = nullptr;  // memory_ aligned to ShmRing::kDefaultAlignment
  std::unique_ptr<worker::OutputRing> ring_;
  std::vector<ipc::RingSlot> live_;
};

}  // namespace pio::sdk
