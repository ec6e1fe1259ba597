#include "pio/host/requests.h"

#include "internal/output_lease.h"

namespace pio::host {

InferOutputs::InferOutputs(std::vector<ipc::TensorView> tensors, std::string json,
                           std::shared_ptr<internal::OutputLease> lease)
    : tensors_(std::move(tensors)), json_(std::move(json)), lease_(std::move(lease)) {}
InferOutputs::InferOutputs(InferOutputs&&) noexcept = default;
InferOutputs& InferOutputs::operator=(InferOutputs&&) noexcept = default;
InferOutputs::~InferOutputs() = default;

const ipc::TensorView* InferOutputs::find(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void InferOutputs::release() {
  tensors_.clear();
  lease_.reset();
}

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

std::string_view plugin_state_name(PluginState state) {
  switch (state) {
    case PluginState::kStarting:
      return "starting";
    case PluginState::kReady:
      return "ready";
    case PluginState::kDraining:
      return "draining";
    case PluginState::kStopped:
      return "stopped";
    case PluginState::kCrashed:
      return "crashed";
    case PluginState::kBackoff:
      return "backoff";
    case PluginState::kRestarting:
      return "restarting";
    case PluginState::kQuarantined:
      return "quarantined";
  }
  return "unknown";
}

}  // namespace pio::host
