#pragma once
// The values that go into and come out of Host calls: input tensors, infer outputs (read in place
// from shared memory), generation options and results, a plugin's status.
//
// The one thing a caller gets wrong: InferOutputs' tensor bytes live in the worker->host ring of
// shared memory. They stay valid (and the worker cannot reuse the space) until the InferOutputs
// is destroyed or release() is called; a hostile worker can still scribble on them, so copy
// before you parse anything out of them.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/tensor_view.h"

namespace pio::host {

namespace internal {
class OutputLease;
}

// An input tensor: the host copies `data` into the host->worker ring.
struct InputTensor {
  std::string name;
  wire::DType dtype = wire::DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

struct InferRequest {
  std::vector<InputTensor> inputs;
  std::string command;      // "" = infer; a plugin command = execute; "pio.*" = SDK verbs
  std::string params_json;  // for commands
  std::optional<std::chrono::milliseconds> deadline;  // default: the host config's
};

// The outputs of one infer/execute. Move-only; releasing hands the slots back to the worker.
class InferOutputs {
 public:
  InferOutputs() = default;
  InferOutputs(std::vector<ipc::TensorView> tensors, std::string json,
               std::shared_ptr<internal::OutputLease> lease);
  InferOutputs(InferOutputs&&) noexcept;
  InferOutputs& operator=(InferOutputs&&) noexcept;
  ~InferOutputs();

  const std::vector<ipc::TensorView>& tensors() const { return tensors_; }
  const ipc::TensorView* find(std::string_view name) const;
  // The plugin's JSON answer (execute, get_model_info); empty when none.
  const std::string& json() const { return json_; }
  // Hands the tensors back now; tensors() is empty afterwards.
  void release();

 private:
  std::vector<ipc::TensorView> tensors_;
  std::string json_;
  std::shared_ptr<internal::OutputLease> lease_;
};

struct GenerateOptions {
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
  std::optional<std::chrono::milliseconds> deadline;
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
std::string_view finish_reason_name(FinishReason reason);

// One streamed piece of a generation, as the worker sent it (already verified).
struct TokenChunk {
  std::vector<int32_t> token_ids;
  std::string text;
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> token_ids;
  FinishReason finish_reason = FinishReason::kStop;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

// Called on the Host's loop thread for each chunk; return false to cancel the generation (it
// then ends with FinishReason::kCancelled). Never call the Host from inside it.
using TokenCallback = std::function<bool(const TokenChunk&)>;

enum class PluginState {
  kStarting,
  kReady,
  kDraining,
  kStopped,
  kCrashed,
  kBackoff,
  kRestarting,
  kQuarantined,
};
std::string_view plugin_state_name(PluginState state);

struct PluginStatus {
  std::string name;
  // Empty for the plugin's own worker; a second worker's instance (Host::activate_instance),
  // whose verbs take "<name>@<instance>" as the plugin name.
  std::string instance;
  std::string version;
  bool active = false;
  PluginState state = PluginState::kStopped;
  int pid = 0;
  uint32_t restarts = 0;
  uint32_t crashes = 0;
  // How the last worker died, with its pid and stderr tail: for operators only (a shared
  // worker's stderr may hold any tenant's data); requests are told the reason without them.
  std::string last_crash;
  // Generations that continued on a restarted worker after theirs died mid-request.
  uint32_t resumed = 0;
  // Worker deaths by how they ended ("memory_limit", "seccomp_violation", "deadline", ...:
  // sandbox::exit_kind_name), counted over the plugin's life; not the stops the host asked for.
  std::map<std::string, uint32_t> exits;
};

}  // namespace pio::host
