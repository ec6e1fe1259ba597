#pragma once
// The worker's half of the C ABI: pio_host_services (what a plugin may call), the pio_call behind
// each request and the pio_error objects a plugin returns.
//
// The one thing a caller gets wrong: a pio_call's outputs are slots of the worker->host ring. When
// the verb fails, or its answer cannot be sent, drop_outputs() must give them back, or the ring
// fills up with slots the host never heard of.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "internal/output_ring.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/tensor_view.h"
#include "pio/plugin.h"

// The worker's error object (plugins see it as opaque).
struct pio_error {
  pio_error_code code;
  std::string message;
};

namespace pio::sdk::worker {

struct OutputTensor {
  std::string name;
  wire::DType dtype;
  ipc::TensorShape shape;
  ipc::RingSlot slot;
};

// One request as the plugin sees it. Lives on the executor thread's stack for the verb's call.
struct CallState {
  OutputRing* ring = nullptr;
  const std::byte* arena_base = nullptr;
  const std::atomic<bool>* cancelled = nullptr;
  ipc::Deadline deadline = ipc::Deadline::max();

  std::vector<OutputTensor> outputs;
  std::optional<std::string> json;
  std::vector<int32_t> tokens;
  std::string text;

  bool deadline_passed() const { return ipc::Clock::now() >= deadline; }
  // Releases every output slot (the request failed or its answer was not sent).
  void drop_outputs();
};

// The services table given to the plugin's create. Static, valid for the process's life.
const pio_host_services* host_services();

// pio_call is CallState; these convert between the two names.
inline pio_call* as_call(CallState* state) { return reinterpret_cast<pio_call*>(state); }

// The Status of an error a plugin returned, and the error freed. Codes outside the enum become
// internal (a plugin's bug, reported as such).
Status take_error(pio_error* error);

}  // namespace pio::sdk::worker
