#pragma once
// PluginSupervisor: one active plugin's worker, kept alive. It spawns the worker in its trust
// level's sandbox, brings it to ready (Hello, Initialize, LoadModel), sends requests and routes
// the answers, watches health (pidfd exit, heartbeats, per-request deadlines), and on a crash
// ends every in-flight request with worker_crashed (or, for a generation the plugin can resume,
// queues it to continue on the restarted worker), then restarts with exponential backoff or
// quarantines the plugin after too many crashes in the window.
//
//   starting -> ready -> draining -> stopped
//   (any running state) -> crashed -> backoff -> restarting -> ready | crashed ...
//   crashed -> quarantined (max_crashes in window)
//
// The one thing a caller gets wrong: everything here runs on the Host's loop thread, callbacks
// included; nothing in it may block (one worker's stall would stall every plugin). A send never
// waits: what the worker's lane cannot take now waits on the host side (see send()).

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "internal/log_tail.h"
#include "internal/output_lease.h"
#include "pio/host/host_config.h"
#include "pio/host/plugin_manifest.h"
#include "pio/host/requests.h"
#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/channel_reader.h"
#include "pio/ipc/shm_arena.h"
#include "pio/ipc/shm_ring.h"
#include "pio/sandbox/launcher.h"

namespace pio::host::internal {

// One spawned worker process and everything that lives exactly as long as it.
struct WorkerIncarnation {
  uint64_t generation = 0;
  std::shared_ptr<ipc::ShmArena> arena;  // shared with OutputLeases
  std::optional<ipc::ArenaLayout> layout;
  std::optional<ipc::Channel> channel;
  std::shared_ptr<ipc::ChannelReader> reader;
  std::shared_ptr<sandbox::Worker> worker;
  std::shared_ptr<LogTail> log;
  std::optional<ipc::ShmRing> input_ring;
  bool hello_seen = false;
  bool can_resume = false;       // its Hello lists sdk::kCapabilityResume
  std::string kill_reason;       // why the host killed it, when it did
  Status spawn_error;            // why it never started (no process then)
  bool library_refused = false;  // its library no longer matches the manifest: quarantine now
  std::chrono::steady_clock::time_point spawned_at;
  // Messages its full lane could not take yet, oldest first (PluginSupervisor::send), and since
  // when the lane last took one while some waited.
  std::deque<std::vector<uint8_t>> unsent;
  size_t unsent_bytes = 0;
  std::chrono::steady_clock::time_point unsent_progress;
};

// A request as the supervisor sees it: how to build it, how to take its answers, how to fail it.
struct Submission {
  // Builds the envelope (request id given) into `fbb`; may allocate input slots from
  // `input_ring` and write into `arena`, listing them in `slots`.
  std::function<Status(uint64_t id, WorkerIncarnation& worker, flatbuffers::FlatBufferBuilder& fbb,
                       std::vector<ipc::RingSlot>& slots)>
      build;
  // An answer for this request (Result, Error, TokenChunk). Returns true when it was the last.
  // An error is a protocol violation: the request fails with it and the worker is killed.
  std::function<Result<bool>(ipc::InboundMessage& message, WorkerIncarnation& worker)> on_message;
  // The request ends without an answer (crash, deadline, shutdown).
  std::function<void(const Status& status)> on_fail;
  // Optional. The worker died with this request in flight, a restart follows and the plugin can
  // resume generations: returns true when the request continues on the next worker (build() is
  // called again and sends what is left), false when it ends (on_fail follows).
  std::function<bool()> resume;
  std::chrono::milliseconds deadline{0};
  // Workers that died while this request was in flight (set by the supervisor).
  uint32_t crashes = 0;
};

class PluginSupervisor : public std::enable_shared_from_this<PluginSupervisor> {
 public:
  // A worker whose lane takes none of the messages waiting for it for this long has stopped
  // reading and is killed (its requests end as worker_crashed).
  static constexpr std::chrono::milliseconds kSendTimeout{500};
  // Most messages (and bytes) waiting on the host side for one worker's lane; past either a new
  // request fails at once with resource_exhausted.
  static constexpr size_t kMaxUnsent = 4096;
  static constexpr size_t kMaxUnsentBytes = 64u << 20;
  // After a request's deadline the worker gets this long to end it before it is killed.
  static constexpr std::chrono::milliseconds kCancelGrace{500};
  // A request in flight when this many workers died ends with the crash: it is probably the cause.
  static constexpr uint32_t kMaxCrashesPerRequest = 2;

  PluginSupervisor(boost::asio::io_context& io, sandbox::WorkerLauncher& launcher,
                   std::shared_ptr<const sandbox::CompiledPolicy> policy, PluginManifest manifest,
                   PluginSettings settings, std::filesystem::path worker_path,
                   std::string config_json, std::optional<std::filesystem::path> model_path,
                   std::shared_ptr<LoopPoster> poster);
  ~PluginSupervisor();

  // Starts the first worker; `on_ready` gets ok once it is ready, or why it never got there.
  void start(std::function<void(const Status&)> on_ready);
  // Queues or sends request `id` (from next_request_id()). Fails it at once when the plugin is
  // stopped or quarantined; queued requests wait for a restarting worker.
  void submit(uint64_t id, Submission submission);
  // Asks the worker to stop `id` (a notice; the request still ends with its own answer).
  void cancel(uint64_t id);
  // Drains (no new requests; in-flight ones finish), sends Shutdown, kills after the timeout.
  void stop(std::function<void()> on_stopped);
  // Immediate stop for host shutdown: kills the worker, fails everything.
  void kill_now(const Status& why);

  PluginStatus status() const;
  // A second worker of the plugin (Host::activate_instance): named "<plugin>@<instance>" in
  // messages and status. Set before start().
  void set_instance(std::string instance) { instance_ = std::move(instance); }
  PluginState state() const { return state_; }
  const PluginManifest& manifest() const { return manifest_; }
  // Request ids are unique per supervisor; the Host needs one to cancel a stream.
  uint64_t next_request_id() { return next_id_++; }
  pid_t pid() const;
  // Sends a Release for output views of the current worker (ignored for an older one).
  void release_outputs(uint64_t generation, const std::vector<ipc::TensorView>& views);
  std::shared_ptr<LoopPoster> poster() const { return poster_; }

 private:
  struct InFlight {
    Submission submission;
    std::vector<ipc::RingSlot> slots;
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::chrono::steady_clock::time_point deadline;
    bool abandoned = false;  // failed at its deadline; the worker still owes an answer
  };
  // A request waiting for a (re)starting worker; its deadline runs while it waits.
  struct Queued {
    uint64_t id;
    Submission submission;
    std::chrono::steady_clock::time_point deadline;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  void spawn_worker();
  void on_message(ipc::InboundMessage& message);
  // Notes what a Hello says the worker can do (before on_message handles it).
  void note_capabilities(ipc::InboundMessage& message);
  // Puts a request into the queue that waits for a (re)starting worker, failing it at `deadline`.
  void enqueue(uint64_t id, Submission submission, std::chrono::steady_clock::time_point deadline,
               bool at_front);
  void on_channel_end(const Status& status);
  void on_worker_exit(uint64_t generation, const sandbox::WorkerExit& exit);
  void begin_initialize();
  void become_ready();
  // `deadline`: when the request must be done (a queued one has already waited part of it).
  void send_request(uint64_t id, Submission submission,
                    std::chrono::steady_clock::time_point deadline);
  std::chrono::milliseconds deadline_of(const Submission& submission) const;
  void finish_request(uint64_t id);
  void on_deadline(uint64_t id);
  void kill_worker(std::string reason);
  // Hands the message to the worker's lane, or when the lane is full keeps it (in order) for
  // flush_unsent(); never blocks. unavailable when there is no worker or the channel failed (the
  // worker is then killed); resource_exhausted when too much already waits.
  Status send(flatbuffers::FlatBufferBuilder& fbb);
  // Moves waiting messages into the lane as it drains (every kFlushInterval while any wait);
  // kills the worker once the lane has taken nothing for kSendTimeout.
  void flush_unsent();
  void schedule_flush();
  void fail_all(const Status& status);
  void schedule_heartbeat();
  void after_drained();
  void set_state(PluginState state) { state_ = state; }
  std::string who() const;

  boost::asio::io_context& io_;
  sandbox::WorkerLauncher& launcher_;
  std::shared_ptr<const sandbox::CompiledPolicy> policy_;
  PluginManifest manifest_;
  std::string instance_;
  PluginSettings settings_;
  std::filesystem::path worker_path_;
  std::string config_json_;
  std::optional<std::filesystem::path> model_path_;
  std::shared_ptr<LoopPoster> poster_;

  PluginState state_ = PluginState::kStopped;
  std::shared_ptr<WorkerIncarnation> current_;
  uint64_t generation_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, InFlight> in_flight_;
  std::deque<Queued> queue_;
  std::deque<std::chrono::steady_clock::time_point> crash_times_;
  uint32_t restarts_ = 0;
  uint32_t crashes_ = 0;
  std::map<std::string, uint32_t> exits_;
  std::string last_crash_;         // with pid and stderr tail: operators only
  std::string last_crash_reason_;  // without them: what requests may be told
  uint32_t resumed_ = 0;

  std::function<void(const Status&)> on_ready_;
  std::function<void()> on_stopped_;
  uint64_t init_id_ = 0;  // the Initialize / LoadModel request in progress
  bool loading_model_ = false;

  boost::asio::steady_timer start_timer_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer stop_timer_;
  boost::asio::steady_timer flush_timer_;
  uint64_t heartbeat_sequence_ = 0;
  uint64_t heartbeat_answered_ = 0;
};

}  // namespace pio::host::internal
