#pragma once
// Test support: a host side for pio-worker without the sandbox. Starts the real worker executable
// as a plain child with the control socket on fd 3, the arena on fd 4 and an empty sealed stage-2
// memfd on fd 5 (the policy of "no filtering"), and speaks the worker protocol to it through a
// host Channel. The sandboxed path is the host's; these tests are about the worker and the SDK.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/shm_arena.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/tensor_view.h"

namespace pio::sdk::testing {

class WorkerProcess {
 public:
  // Starts pio-worker with `plugin` and `extra_args` (before the plugin path).
  static std::unique_ptr<WorkerProcess> start(const std::string& plugin,
                                              const std::vector<std::string>& extra_args = {});
  ~WorkerProcess();

  ipc::Channel& channel() { return *channel_; }
  ipc::ShmArena& arena() { return *arena_; }
  const ipc::ArenaLayout& layout() const { return *layout_; }
  pid_t pid() const { return pid_; }

  // Receives the next message (10 s deadline); fails the test on a channel error.
  Status receive(ipc::InboundMessage* out);
  // Sends a finished envelope.
  Status send(flatbuffers::FlatBufferBuilder& fbb);

  // Request helpers; each returns the request id it used.
  uint64_t send_initialize(const std::string& config_json);
  uint64_t send_load_model(const std::string& path);
  // Infer with `inputs` already written into the host->worker ring (see write_input).
  uint64_t send_infer(const std::string& command, const std::string& params_json,
                      const std::vector<ipc::TensorView>& inputs, uint32_t deadline_ms = 0);
  // `resume`: the tokens a resumed generation already sent (Generate.resume_token_ids).
  uint64_t send_generate(const std::string& prompt, uint32_t max_tokens, bool stream = true,
                         const std::vector<int32_t>* resume = nullptr);
  void send_cancel(uint64_t target);
  void send_release(const std::vector<ipc::TensorView>& outputs);
  uint64_t send_shutdown();

  // Writes a tensor into a new slot of the host->worker ring; release_inputs() frees them all.
  ipc::TensorView write_input(const std::string& name, wire::DType dtype,
                              const std::vector<int64_t>& shape, const void* data);
  void release_inputs();
  // The checked outputs of a Result, read in place from the worker->host ring.
  Result<std::vector<ipc::TensorView>> outputs_of(const ipc::InboundMessage& result);

  // Closes the host's end of the control channel (as a host that died would).
  void close_channel() { channel_.reset(); }

  // Waits for the worker to exit; returns its wait status.
  int wait();

 private:
  WorkerProcess() = default;
  std::unique_ptr<ipc::ShmArena> arena_;
  std::optional<ipc::ArenaLayout> layout_;
  std::unique_ptr<ipc::Channel> channel_;
  std::optional<ipc::ShmRing> inputs_ring_;
  std::vector<ipc::RingSlot> input_slots_;
  uint64_t next_id_ = 1;
  pid_t pid_ = -1;
};

}  // namespace pio::sdk::testing
