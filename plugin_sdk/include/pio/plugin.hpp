#pragma once
// pio/plugin.hpp: the C++ interface plugin authors implement.
//
// Derive from pio::sdk::ModelPlugin (or TextModelPlugin for a text model), give the class
// `static constexpr const char* kPluginName` and `kPluginVersion` (as in plugin_manifest.json),
// and put PIO_PLUGIN(YourClass) in exactly one .cc file. A text model that honours
// GenerateRequest::resume_token_ids says so with `static constexpr bool kResumesGenerations =
// true;`: a stream then survives a crash of its worker. The macro emits pio_plugin_entry, the C
// entry point of pio/plugin.h, and wraps every verb so that no exception crosses it: an exception
// that escapes a verb becomes PIO_ERROR_INTERNAL carrying its what().
//
// The one thing an author gets wrong: TensorView data and the memory behind an output tensor live
// in shared memory owned by the worker. Both are valid only during the call: copy inputs you need
// later, and never write an output after the verb returned. Every verb runs on one thread at a
// time (the worker serialises them), so a plugin needs no locking of its own for that.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"
#include "pio/plugin.h"

namespace pio::sdk {

// Objects keep their keys in the order the host sent them (as Python's json does): a chat
// template that writes a tool schema back out must reproduce the client's key order.
using Json = nlohmann::ordered_json;

enum class DType : uint8_t {
  kF32 = PIO_DTYPE_F32,
  kF16 = PIO_DTYPE_F16,
  kBF16 = PIO_DTYPE_BF16,
  kF64 = PIO_DTYPE_F64,
  kI8 = PIO_DTYPE_I8,
  kU8 = PIO_DTYPE_U8,
  kI16 = PIO_DTYPE_I16,
  kI32 = PIO_DTYPE_I32,
  kI64 = PIO_DTYPE_I64,
  kBool = PIO_DTYPE_BOOL,
};

// Bytes per element; 0 for a value outside the enum.
size_t dtype_size(DType dtype);

// An input tensor, read in place from the host->worker ring. Borrowed for the verb's duration.
class TensorView {
 public:
  explicit TensorView(const pio_tensor_view& view) : view_(&view) {}
  std::string_view name() const { return view_->name; }
  DType dtype() const { return static_cast<DType>(view_->dtype); }
  std::span<const int64_t> shape() const { return {view_->shape, view_->rank}; }
  std::span<const std::byte> bytes() const {
    return {static_cast<const std::byte*>(view_->data), static_cast<size_t>(view_->length)};
  }
  // The elements as T; the caller checks dtype() first (the worker guarantees the alignment).
  template <typename T>
  std::span<const T> as() const {
    return {static_cast<const T*>(view_->data), static_cast<size_t>(view_->length / sizeof(T))};
  }

 private:
  const pio_tensor_view* view_;
};

// One request inside the worker: where outputs go, and whether the host still wants them.
class CallContext {
 public:
  CallContext(const pio_host_services* host, pio_call* call) : host_(host), call_(call) {}
  // Writable bytes for an output tensor, straight in the worker->host ring. Valid until the verb
  // returns. resource_exhausted when the ring stays full until the request's deadline.
  Result<std::span<std::byte>> allocate_output(std::string_view name, DType dtype,
                                               std::span<const int64_t> shape);
  template <typename T>
  Result<std::span<T>> allocate_output_as(std::string_view name, DType dtype,
                                          std::span<const int64_t> shape) {
    PIO_ASSIGN_OR_RETURN(auto bytes, allocate_output(name, dtype, shape));
    return std::span<T>(reinterpret_cast<T*>(bytes.data()), bytes.size() / sizeof(T));
  }
  // True once the host cancelled this request or its deadline passed: stop and return
  // cancelled_error (the worker reports the right code either way).
  bool cancelled() const;
  const pio_host_services* host() const { return host_; }
  pio_call* call() const { return call_; }

 private:
  const pio_host_services* host_;
  pio_call* call_;
};

// Where a generation's tokens go. emit() returns false when the request was cancelled: the plugin
// must stop then and return a GenerateResult with FinishReason::kCancelled.
class TokenStream {
 public:
  TokenStream(const CallContext& call, pio_token_callback callback, void* user)
      : call_(call), callback_(callback), user_(user) {}
  // `text` must be whole UTF-8 characters (hold back a partial one until it completes).
  bool emit(std::span<const int32_t> token_ids, std::string_view text) {
    return callback_(user_, token_ids.data(), token_ids.size(), text.data(), text.size()) == 0;
  }
  bool cancelled() const { return call_.cancelled(); }

 private:
  const CallContext& call_;
  pio_token_callback callback_;
  void* user_;
};

struct SamplingParams {
  uint32_t max_tokens = 16;
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
};

// Its implicit move cannot throw: every member's move is noexcept (Json's included, which
// clang-tidy 14 reads through as if it were not).
struct GenerateRequest {  // NOLINT(bugprone-exception-escape)
  // generate_text: the prompt as text, or as token ids when prompt_token_ids is set.
  std::string_view prompt;
  std::optional<std::span<const int32_t>> prompt_token_ids;
  // chat_completion: the parsed JSON array of messages ({"role", "content"}), the tool schemas
  // (null when none) and the template's extra arguments (null or an object, such as
  // {"enable_thinking": false}). The host sends either a bare array of messages or an object
  // {"messages", "tools", "chat_template_kwargs"}.
  Json messages;
  Json tools;
  Json chat_template_kwargs;
  SamplingParams params;
  // Set (possibly empty) only for a plugin with kResumesGenerations, when the generation's
  // worker died after the client got these tokens: continue as if this call had just generated
  // them (sampler state and held-back text included), emit only what follows, and count them in
  // completion_tokens (pio/plugin.h, pio_generate_request.resume_token_ids).
  std::optional<std::span<const int32_t>> resume_token_ids;
};

enum class FinishReason : uint8_t {
  kStop = PIO_FINISH_STOP,
  kLength = PIO_FINISH_LENGTH,
  kCancelled = PIO_FINISH_CANCELLED,
};

struct GenerateResult {
  FinishReason finish_reason = FinishReason::kStop;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

// What load_model gets: the path the host resolved inside the plugin's model roots, opened by the
// worker beneath its root. Borrowed for the call (the worker closes the fd afterwards).
class ModelSource {
 public:
  explicit ModelSource(const pio_model_source& source) : source_(&source) {}
  bool empty() const { return source_->fd < 0; }
  std::string_view path() const { return source_->path; }
  int fd() const { return source_->fd; }
  // Opens `relative` beneath the model directory (openat2 RESOLVE_BENEATH |
  // RESOLVE_NO_MAGICLINKS): "..", absolute paths and symlinks out of it are refused.
  Result<UniqueFd> open(std::string_view relative, int flags = 0) const;

 private:
  const pio_model_source* source_;
};

// The seeds' plugin interface. Every verb returns Status/Result; exceptions are caught at the C
// boundary too, but a Status carries the right code and a better message.
class ModelPlugin {
 public:
  virtual ~ModelPlugin() = default;
  // Setup from the plugin's configuration (JSON object). Called once, first.
  virtual Status initialize(const Json& config) {
    static_cast<void>(config);
    return ok_status();
  }
  virtual Status load_model(const ModelSource& source, const Json& config) = 0;
  virtual Status infer(std::span<const TensorView> inputs, CallContext& call) = 0;
  virtual Status cleanup() { return ok_status(); }
  virtual Result<bool> supports_config(const Json& config) {
    static_cast<void>(config);
    return true;
  }
  virtual Status install() { return ok_status(); }
  virtual Result<Json> get_model_info() = 0;
  virtual Status update_config(const Json& config) {
    static_cast<void>(config);
    return unimplemented_error("update_config: this plugin has no run-time configuration");
  }
  // A command of the plugin's own. Answer with a JSON document (null for none) and/or outputs
  // allocated through `call`. not_found for an unknown command.
  virtual Result<Json> execute(std::string_view command, const Json& params,
                               std::span<const TensorView> inputs, CallContext& call);
};

// A text model: adds the text verbs.
class TextModelPlugin : public ModelPlugin {
 public:
  virtual Result<std::vector<int32_t>> tokenize(std::string_view text) = 0;
  virtual Result<std::string> detokenize(std::span<const int32_t> token_ids) = 0;
  virtual Result<GenerateResult> generate_text(const GenerateRequest& request,
                                               TokenStream& out) = 0;
  virtual Result<GenerateResult> chat_completion(const GenerateRequest& request,
                                                 TokenStream& out) = 0;
};

namespace internal {

using PluginFactory = std::unique_ptr<ModelPlugin> (*)();

// The C table for a plugin made by `factory` (see PIO_PLUGIN). Defined in the SDK library.
pio_plugin_api make_plugin_api(const char* name, const char* version, bool text_model);
pio_error* create_plugin(const pio_host_services* host, pio_plugin** out,
                         PluginFactory factory) noexcept;

template <typename Class>
std::unique_ptr<ModelPlugin> make_plugin() {
  return std::make_unique<Class>();
}

template <typename Class>
pio_error* create_plugin_of(const pio_host_services* host, pio_plugin** out) noexcept {
  return create_plugin(host, out, &make_plugin<Class>);
}

template <typename Class>
const pio_plugin_api* plugin_api_for(uint32_t abi_version) noexcept {
  static_assert(std::is_base_of_v<ModelPlugin, Class>,
                "PIO_PLUGIN(Class): Class must derive from pio::sdk::ModelPlugin");
  if (abi_version != PIO_PLUGIN_ABI_VERSION) return nullptr;
  static const pio_plugin_api api = [] {
    pio_plugin_api table = make_plugin_api(Class::kPluginName, Class::kPluginVersion,
                                           std::is_base_of_v<TextModelPlugin, Class>);
    table.create = &create_plugin_of<Class>;
    if constexpr (requires { Class::kResumesGenerations; }) {
      static_assert(std::is_base_of_v<TextModelPlugin, Class>,
                    "kResumesGenerations: only a text model resumes generations");
      if (Class::kResumesGenerations) table.capabilities |= PIO_PLUGIN_CAPABILITY_RESUME;
    }
    return table;
  }();
  return &api;
}

}  // namespace internal
}  // namespace pio::sdk

// Emits the plugin's C entry point for `Class`. Use once per plugin library.
#define PIO_PLUGIN(Class)                                                                     \
  extern "C" PIO_PLUGIN_EXPORT const pio_plugin_api* pio_plugin_entry(uint32_t abi_version) { \
    return ::pio::sdk::internal::plugin_api_for<Class>(abi_version);                          \
  }
