#pragma once
// WorkerLoop: pio-worker after start-up: reads the control channel and runs the plugin's verbs
// (see pio/plugin_sdk/worker_protocol.h for the protocol).
//
// Two threads: run() reads the channel and answers Heartbeat, Stats, Cancel and Release at once;
// an executor thread takes the requests that call the plugin (Initialize, LoadModel, Infer,
// Generate) one at a time, in arrival order. So a plugin's verbs never run concurrently, a long
// verb does not silence heartbeats, and a Cancel reaches a generation between two tokens.
//
// The one thing a caller gets wrong: the plugin instance belongs to the loop from construction;
// run() destroys it (cleanup, then destroy) before returning, on every path but a verb that never
// returns, where the process exits without touching the plugin again.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "internal/output_ring.h"
#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/shm_arena.h"
#include "pio/plugin.h"
#include "pio/plugin_sdk/path_guard.h"
#include "pio/plugin_sdk/worker_protocol.h"

namespace pio::sdk::worker {

struct CallState;

// A model root the host granted, opened (O_PATH) before the sandbox's stage 2.
struct ModelRoots {
  std::optional<PathGuard> guard;  // roots, canonical
  std::vector<UniqueFd> fds;       // one per guard->roots(), same order
};

class WorkerLoop {
 public:
  WorkerLoop(ipc::Channel& channel, const ipc::ShmArena& arena, const ipc::ArenaLayout& layout,
             const pio_plugin_api& api, pio_plugin* plugin, ModelRoots roots,
             ipc::ShmRing output_ring);
  ~WorkerLoop();
  WorkerLoop(const WorkerLoop&) = delete;
  WorkerLoop& operator=(const WorkerLoop&) = delete;

  // Sends Hello, then serves until Shutdown or the host's end closes. Returns the exit code.
  WorkerExitCode run();

 private:
  struct Request {
    uint64_t id = 0;
    std::vector<uint8_t> bytes;  // the verified envelope, copied
    std::shared_ptr<std::atomic<bool>> cancelled;
  };

  // Channel thread.
  void enqueue(const ipc::InboundMessage& message);
  void cancel(uint64_t target);
  void release(const ipc::InboundMessage& message);
  void answer_heartbeat(const ipc::InboundMessage& message);
  void answer_stats(uint64_t id);
  // Stops the executor (cancelling what runs, dropping what waits), then cleans the plugin up.
  // `id`: the Shutdown to answer; none when the host's end closed (nothing is sent then).
  WorkerExitCode shutdown(std::optional<uint64_t> id, uint32_t deadline_ms);

  // Executor thread.
  void executor_main();
  void execute(const Request& request);
  void run_initialize(const Request& request, const wire::Initialize& message);
  void run_load_model(const Request& request, const wire::LoadModel& message);
  void run_infer(const Request& request, const wire::Infer& message);
  void run_generate(const Request& request, const wire::Generate& message);
  // The plugin's table lists PIO_PLUGIN_CAPABILITY_RESUME (and is new enough to have the field).
  bool can_resume() const;
  Status dispatch_command(std::string_view command, const wire::Infer& message,
                          const std::vector<pio_tensor_view>& inputs, CallState& call);
  void answer_result(uint64_t id, CallState& call);

  // Either thread.
  Status send(flatbuffers::FlatBufferBuilder& fbb);
  void send_error(uint64_t id, const Status& status);
  ipc::Deadline deadline_of(uint32_t deadline_ms) const;

  ipc::Channel& channel_;
  const ipc::ShmArena& arena_;
  ipc::ArenaLayout layout_;
  const pio_plugin_api& api_;
  pio_plugin* plugin_;
  ModelRoots roots_;
  OutputRing outputs_;

  std::mutex send_mu_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable idle_cv_;
  std::deque<Request> queue_;
  // Requests queued or running, by id: what Cancel looks up.
  std::map<uint64_t, std::shared_ptr<std::atomic<bool>>> in_flight_;
  bool stopping_ = false;
  bool executor_busy_ = false;

  // Executor thread only: Initialize succeeded and no pio.cleanup since. Every other verb needs it.
  bool initialized_ = false;
  std::atomic<uint64_t> tokens_generated_{0};
  std::thread executor_;
};

}  // namespace pio::sdk::worker
