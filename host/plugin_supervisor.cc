#include "internal/plugin_supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdio>

#include "fmt/format.h"
#include "internal/sealed_library.h"
#include "internal/worker_text.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/socket_packet.h"
#include "pio/plugin_sdk/worker_protocol.h"
#include "pio/sandbox/worker_side.h"

namespace pio::host::internal {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxQueued = 4096;

// How often messages waiting for a full lane are offered to it again. The worker does not tell
// the host when it has read; a lane is full only under a burst or a stalled worker, so a short
// timer, armed only then, costs nothing the rest of the time.
constexpr auto kFlushInterval = std::chrono::milliseconds(1);

// The text as a terminal would show it harmlessly: control characters (C0 but newline and tab,
// DEL, C1) become \xNN, so a worker's stderr in the host's log cannot drive the operator's
// terminal (move the cursor, rewrite earlier lines, set the title).
std::string printable_for_log(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xC2 && i + 1 < text.size() &&
                    static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c1) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[++i]));
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

uint32_t to_deadline_ms(milliseconds d) {
  return static_cast<uint32_t>(std::clamp<int64_t>(d.count(), 0, UINT32_MAX));
}

}  // namespace

PluginSupervisor::PluginSupervisor(boost::asio::io_context& io, sandbox::WorkerLauncher& launcher,
                                   std::shared_ptr<const sandbox::CompiledPolicy> policy,
                                   PluginManifest manifest, PluginSettings settings,
                                   std::filesystem::path worker_path, std::string config_json,
                                   std::optional<std::filesystem::path> model_path,
                                   std::shared_ptr<LoopPoster> poster)
    : io_(io),
      launcher_(launcher),
      policy_(std::move(policy)),
      manifest_(std::move(manifest)),
      settings_(std::move(settings)),
      worker_path_(std::move(worker_path)),
      config_json_(std::move(config_json)),
      model_path_(std::move(model_path)),
      poster_(std::move(poster)),
      start_timer_(io),
      backoff_timer_(io),
      heartbeat_timer_(io),
      stop_timer_(io),
      flush_timer_(io) {}

PluginSupervisor::~PluginSupervisor() {
  if (current_ && current_->reader) current_->reader->stop();
  if (current_ && current_->log) current_->log->stop();
}

std::string PluginSupervisor::who() const {
  return instance_.empty() ? fmt::format("plugin \"{}\"", manifest_.name)
                           : fmt::format("plugin \"{}@{}\"", manifest_.name, instance_);
}

pid_t PluginSupervisor::pid() const {
  return current_ && current_->worker && !current_->worker->exited() ? current_->worker->pid() : 0;
}

PluginStatus PluginSupervisor::status() const {
  PluginStatus s;
  s.name = manifest_.name;
  s.instance = instance_;
  s.version = manifest_.version;
  s.active = state_ != PluginState::kStopped;
  s.state = state_;
  s.pid = pid();
  s.restarts = restarts_;
  s.crashes = crashes_;
  s.last_crash = last_crash_;
  s.resumed = resumed_;
  s.exits = exits_;
  return s;
}

void PluginSupervisor::start(std::function<void(const Status&)> on_ready) {
  on_ready_ = std::move(on_ready);
  set_state(PluginState::kStarting);
  spawn_worker();
}

void PluginSupervisor::spawn_worker() {
  auto w = std::make_shared<WorkerIncarnation>();
  w->generation = ++generation_;
  w->spawned_at = Clock::now();
  const uint64_t gen = w->generation;
  auto fail_start = [&](const Status& status) {
    // A worker that could not even be spawned is handled like one that died at once.
    current_ = w;
    last_crash_ = last_crash_reason_ = status.message();
    sandbox::WorkerExit none;
    none.kind = sandbox::ExitKind::kKilledByHost;
    w->kill_reason = status.to_string();
    w->spawn_error = status;
    boost::asio::post(io_, [self = weak_from_this(), gen, none] {
      if (auto s = self.lock()) s->on_worker_exit(gen, none);
    });
  };

  ipc::ArenaConfig arena_config;
  arena_config.host_to_worker_ring_bytes = settings_.ring_bytes;
  arena_config.worker_to_host_ring_bytes = settings_.ring_bytes;
  auto layout = ipc::ArenaLayout::compute(arena_config);
  if (!layout.ok()) return fail_start(layout.status());
  w->layout = *layout;
  auto arena = ipc::ShmArena::create(fmt::format("pio-{}", manifest_.name), layout->total_size());
  if (!arena.ok()) return fail_start(arena.status());
  w->arena = std::make_shared<ipc::ShmArena>(std::move(*arena));
  ipc::Channel::prepare_arena(*w->arena, *w->layout);
  auto ring = ipc::ShmRing::create(w->layout->ring_host_to_worker().offset,
                                   w->layout->ring_host_to_worker().size);
  if (!ring.ok()) return fail_start(ring.status());
  w->input_ring.emplace(std::move(*ring));
  auto sockets = ipc::make_packet_socketpair();
  if (!sockets.ok()) return fail_start(sockets.status());
  UniqueFd log_write;
  auto log = LogTail::create(io_, &log_write);
  if (!log.ok()) return fail_start(log.status());
  w->log = *log;

  // The worker maps these checked, sealed bytes, not whatever the path holds by now.
  auto library = seal_plugin_library(manifest_);
  if (!library.ok()) {
    w->library_refused = true;
    return fail_start(library.status());
  }

  sandbox::SpawnRequest request;
  request.worker_path = worker_path_;
  for (const auto& root : settings_.model_roots) {
    request.args.push_back("--model-root");
    request.args.push_back(root.string());
  }
  request.args.push_back("--library-fd");
  request.args.push_back(std::to_string(sandbox::kPluginLibraryFd));
  request.library_fd = library->get();
  request.args.push_back(manifest_.library_path().string());
  request.plugin_dir = manifest_.directory;
  request.model_dirs = settings_.model_roots;
  request.control_fd = sockets->second.get();
  request.arena_fd = w->arena->fd();
  request.log_fd = log_write.get();
  request.network_requested = manifest_.capabilities.network;
  request.host_network = settings_.host_network;
  if (settings_.limits.memory_mb) request.limits.memory_bytes = *settings_.limits.memory_mb << 20;
  if (settings_.limits.pids) request.limits.pids_max = *settings_.limits.pids;
  if (settings_.limits.cpu_percent) request.limits.cpu_percent = *settings_.limits.cpu_percent;
  request.cpu_seconds = settings_.limits.cpu_seconds;
  request.on_exit = [self = weak_from_this(), gen](const sandbox::WorkerExit& exit) {
    if (auto s = self.lock()) s->on_worker_exit(gen, exit);
  };
  auto worker = launcher_.spawn(*policy_, std::move(request));
  sockets->second.reset();
  log_write.reset();
  if (!worker.ok()) return fail_start(worker.status().with_context(who()));
  w->worker = *worker;
  current_ = w;
  w->log->start();

  auto channel = ipc::Channel::create(std::move(sockets->first), *w->arena, *w->layout,
                                      ipc::ChannelSide::kHost);
  if (!channel.ok()) return kill_worker(channel.status().to_string());
  w->channel.emplace(std::move(*channel));
  auto reader = ipc::ChannelReader::start(
      io_, *w->channel,
      [self = weak_from_this(), gen](ipc::InboundMessage& m) {
        auto s = self.lock();
        if (s && s->current_ && s->current_->generation == gen) {
          s->note_capabilities(m);
          s->on_message(m);
        }
      },
      [self = weak_from_this(), gen](const Status& status) {
        auto s = self.lock();
        if (s && s->current_ && s->current_->generation == gen) s->on_channel_end(status);
      });
  if (!reader.ok()) return kill_worker(reader.status().to_string());
  w->reader = *reader;

  start_timer_.expires_after(settings_.start_timeout);
  start_timer_.async_wait([self = weak_from_this(), gen](const boost::system::error_code& ec) {
    auto s = self.lock();
    if (ec || !s || !s->current_ || s->current_->generation != gen) return;
    if (s->state_ == PluginState::kStarting || s->state_ == PluginState::kRestarting) {
      s->kill_worker(
          fmt::format("not ready within start_timeout_ms={}", s->settings_.start_timeout.count()));
    }
  });
}

Status PluginSupervisor::send(flatbuffers::FlatBufferBuilder& fbb) {
  if (!current_ || !current_->channel || current_->channel->broken()) {
    return unavailable_error(fmt::format("{}: no worker to send to", who()));
  }
  WorkerIncarnation& w = *current_;
  const std::span<const uint8_t> bytes = ipc::builder_bytes(fbb);
  if (w.unsent.empty()) {
    // A deadline already passed: the channel takes the message if its lane has room now, and
    // answers deadline_exceeded, having sent nothing, if not.
    Status s = w.channel->send(bytes, {}, Clock::now());
    if (s.ok()) return ok_status();
    if (s.code() != ErrorCode::kDeadlineExceeded) {
      kill_worker(fmt::format("could not send to it: {}", s.to_string()));
      return unavailable_error(
          fmt::format("{}: the worker did not take the request ({})", who(), s.message()));
    }
    w.unsent_progress = Clock::now();
    schedule_flush();
  }
  // Behind others that wait: sent after them, in order.
  if (w.unsent.size() >= kMaxUnsent || w.unsent_bytes + bytes.size() > kMaxUnsentBytes) {
    return resource_exhausted_error(fmt::format(
        "{}: the worker is not keeping up ({} messages, {} KiB wait for its lane); retry later",
        who(), w.unsent.size(), w.unsent_bytes >> 10));
  }
  w.unsent.emplace_back(bytes.begin(), bytes.end());
  w.unsent_bytes += bytes.size();
  return ok_status();
}

void PluginSupervisor::flush_unsent() {
  if (!current_ || !current_->channel) return;
  WorkerIncarnation& w = *current_;
  while (!w.unsent.empty()) {
    Status s = w.channel->send(w.unsent.front(), {}, Clock::now());
    if (s.code() == ErrorCode::kDeadlineExceeded) break;  // still full
    if (!s.ok()) {
      w.unsent.clear();
      w.unsent_bytes = 0;
      return kill_worker(fmt::format("could not send to it: {}", s.to_string()));
    }
    w.unsent_bytes -= w.unsent.front().size();
    w.unsent.pop_front();
    w.unsent_progress = Clock::now();
  }
  if (w.unsent.empty()) return;
  if (Clock::now() - w.unsent_progress >= kSendTimeout) {
    return kill_worker(
        fmt::format("its message lane took none of the {} messages waiting for it in {} ms "
                    "(it stopped reading)",
                    w.unsent.size(), kSendTimeout.count()));
  }
  schedule_flush();
}

void PluginSupervisor::schedule_flush() {
  flush_timer_.expires_after(kFlushInterval);
  flush_timer_.async_wait(
      [self = weak_from_this(), gen = current_->generation](const boost::system::error_code& ec) {
        auto s = self.lock();
        if (!ec && s && s->current_ && s->current_->generation == gen) s->flush_unsent();
      });
}

void PluginSupervisor::on_message(ipc::InboundMessage& message) {
  WorkerIncarnation& w = *current_;
  const wire::Message type = message.type();
  const uint64_t id = message.request_id();
  if (!w.hello_seen) {
    if (type == wire::Message::Hello) {
      const auto* hello = message.envelope().message_as_Hello();
      const std::string name = worker_text(hello->plugin_name());
      if (name != manifest_.name) {
        // Shown cut: the name is the worker's, and may be as long as a packet.
        constexpr size_t kShown = 64;
        return kill_worker(fmt::format("its Hello names plugin \"{}\"{}, the manifest \"{}\"",
                                       ipc::to_valid_utf8(std::string_view(name).substr(0, kShown)),
                                       name.size() > kShown ? "..." : "", manifest_.name));
      }
      w.hello_seen = true;
      return begin_initialize();
    }
    if (type == wire::Message::Error) {
      const auto* error = message.envelope().message_as_Error();
      w.kill_reason = fmt::format("start-up failed: {}", worker_text(error->message()));
      return;  // it exits next; on_worker_exit reports the reason
    }
    return kill_worker(
        fmt::format("protocol violation: {} before Hello", ipc::message_type_name(type)));
  }
  switch (type) {
    case wire::Message::Heartbeat: {
      const auto* beat = message.envelope().message_as_Heartbeat();
      if (beat->reply()) heartbeat_answered_ = std::max(heartbeat_answered_, beat->sequence());
      return;
    }
    case wire::Message::Stats:
    case wire::Message::Release:
      return;
    case wire::Message::Result:
    case wire::Message::Error:
    case wire::Message::TokenChunk:
      break;
    default:
      return kill_worker(fmt::format("protocol violation: it sent {}, which only the host sends",
                                     ipc::message_type_name(type)));
  }
  if (init_id_ != 0 && id == init_id_) {
    if (type == wire::Message::Error) {
      const auto* error = message.envelope().message_as_Error();
      const Status status(
          ipc::from_wire(error->code()),
          fmt::format("{}: {} failed: {}", who(), loading_model_ ? "load_model" : "initialize",
                      worker_text(error->message())));
      init_id_ = 0;
      if (on_ready_) {
        auto cb = std::move(on_ready_);
        on_ready_ = nullptr;
        set_state(PluginState::kStopped);
        fail_all(status);
        if (current_->reader) current_->reader->stop();
        current_->kill_reason = status.message();
        current_->worker->kill();
        cb(status);
        return;
      }
      return kill_worker(status.message());
    }
    if (type != wire::Message::Result) {
      return kill_worker(
          fmt::format("protocol violation: {} answers initialize", ipc::message_type_name(type)));
    }
    if (!loading_model_ && model_path_.has_value()) {
      loading_model_ = true;
      init_id_ = next_id_++;
      flatbuffers::FlatBufferBuilder fbb;
      ipc::finish_envelope(
          fbb, init_id_, wire::Message::LoadModel,
          wire::CreateLoadModelDirect(fbb, model_path_->c_str(), config_json_.c_str()).Union());
      (void)send(fbb);
      return;
    }
    init_id_ = 0;
    return become_ready();
  }
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;  // a late answer to a request already ended, or a Release's
  InFlight& entry = it->second;
  if (entry.abandoned) {
    const bool last =
        type != wire::Message::TokenChunk ||
        message.envelope().message_as_TokenChunk()->finish_reason() != wire::FinishReason::None;
    if (last) finish_request(id);
    return;
  }
  auto done = entry.submission.on_message(message, w);
  if (!done.ok()) {
    entry.submission.on_fail(done.status());
    entry.abandoned = true;
    return kill_worker(done.status().message());
  }
  if (*done) finish_request(id);
}

void PluginSupervisor::note_capabilities(ipc::InboundMessage& message) {
  if (message.type() != wire::Message::Hello || current_->hello_seen) return;
  const auto* capabilities = message.envelope().message_as_Hello()->capabilities();
  if (capabilities == nullptr) return;
  for (const auto* capability : *capabilities) {
    if (capability != nullptr &&
        std::string_view(capability->c_str(), capability->size()) == sdk::kCapabilityResume) {
      current_->can_resume = true;
    }
  }
}

void PluginSupervisor::begin_initialize() {
  init_id_ = next_id_++;
  loading_model_ = false;
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(fbb, init_id_, wire::Message::Initialize,
                       wire::CreateInitializeDirect(fbb, config_json_.c_str()).Union());
  (void)send(fbb);
}

void PluginSupervisor::become_ready() {
  start_timer_.cancel();
  if (state_ == PluginState::kDraining) return after_drained();
  set_state(PluginState::kReady);
  heartbeat_sequence_ = heartbeat_answered_ = 0;
  schedule_heartbeat();
  if (on_ready_) {
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    cb(ok_status());
  }
  while (!queue_.empty() && state_ == PluginState::kReady) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    q.timer->cancel();
    send_request(q.id, std::move(q.submission), q.deadline);
  }
}

void PluginSupervisor::submit(uint64_t id, Submission submission) {
  switch (state_) {
    case PluginState::kReady: {
      // The deadline is read before the submission moves: argument order is unspecified.
      const auto deadline = Clock::now() + deadline_of(submission);
      return send_request(id, std::move(submission), deadline);
    }
    case PluginState::kStarting:
    case PluginState::kCrashed:
    case PluginState::kBackoff:
    case PluginState::kRestarting:
      if (queue_.size() >= kMaxQueued) {
        return submission.on_fail(resource_exhausted_error(
            fmt::format("{}: {} requests already wait for the worker to restart; retry later",
                        who(), kMaxQueued)));
      }
      {
        const auto deadline = Clock::now() + deadline_of(submission);
        return enqueue(id, std::move(submission), deadline, /*at_front=*/false);
      }
    case PluginState::kDraining:
    case PluginState::kStopped:
      return submission.on_fail(failed_precondition_error(
          fmt::format("{} is not active (activate_plugin first)", who())));
    case PluginState::kQuarantined:
      return submission.on_fail(failed_precondition_error(fmt::format(
          "{} is quarantined after {} crashes within {} ms (last: {}); fix the plugin, then "
          "deactivate and activate it again",
          who(), settings_.restart.max_crashes, settings_.restart.window.count(),
          last_crash_reason_)));
  }
}

void PluginSupervisor::enqueue(uint64_t id, Submission submission, Clock::time_point deadline,
                               bool at_front) {
  Queued q{id, std::move(submission), deadline, std::make_unique<boost::asio::steady_timer>(io_)};
  q.timer->expires_at(q.deadline);
  q.timer->async_wait([self = weak_from_this(), id](const boost::system::error_code& ec) {
    auto s = self.lock();
    if (ec || !s) return;
    for (auto it = s->queue_.begin(); it != s->queue_.end(); ++it) {
      if (it->id != id) continue;
      auto waiting = std::move(it->submission);
      s->queue_.erase(it);
      return waiting.on_fail(deadline_exceeded_error(fmt::format(
          "{}: the request's deadline passed while it waited for the worker to (re)start "
          "(state {})",
          s->who(), plugin_state_name(s->state_))));
    }
  });
  if (at_front) {
    queue_.push_front(std::move(q));
  } else {
    queue_.push_back(std::move(q));
  }
}

std::chrono::milliseconds PluginSupervisor::deadline_of(const Submission& submission) const {
  return submission.deadline.count() > 0 ? submission.deadline : settings_.request_deadline;
}

void PluginSupervisor::send_request(uint64_t id, Submission submission,
                                    Clock::time_point deadline) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<ipc::RingSlot> slots;
  Status built = submission.build(id, *current_, fbb, slots);
  if (built.ok()) built = send(fbb);
  if (!built.ok()) {
    for (const auto& slot : slots) current_->input_ring->release(slot).ignore();
    return submission.on_fail(built);
  }
  InFlight& entry = in_flight_[id];
  entry.submission = std::move(submission);
  entry.slots = std::move(slots);
  entry.deadline = deadline;
  entry.timer = std::make_unique<boost::asio::steady_timer>(io_);
  entry.timer->expires_at(deadline);
  entry.timer->async_wait([self = weak_from_this(), id](const boost::system::error_code& ec) {
    auto s = self.lock();
    if (!ec && s) s->on_deadline(id);
  });
}

void PluginSupervisor::finish_request(uint64_t id) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  if (current_ && current_->input_ring) {
    for (const auto& slot : it->second.slots) current_->input_ring->release(slot).ignore();
  }
  if (it->second.timer) it->second.timer->cancel();
  in_flight_.erase(it);
  if (state_ == PluginState::kDraining && in_flight_.empty()) after_drained();
}

void PluginSupervisor::on_deadline(uint64_t id) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  InFlight& entry = it->second;
  if (entry.abandoned) {
    return kill_worker(
        fmt::format("request {} was still running {} ms after its deadline (the plugin "
                    "ignores cancellation)",
                    id, kCancelGrace.count()));
  }
  entry.abandoned = true;
  entry.submission.on_fail(deadline_exceeded_error(fmt::format(
      "{}: the request did not finish within its deadline; it was cancelled (raise the deadline "
      "or request_deadline_ms if the plugin is just slow)",
      who())));
  cancel(id);
  entry.timer->expires_after(kCancelGrace);
  entry.timer->async_wait([self = weak_from_this(), id](const boost::system::error_code& ec) {
    auto s = self.lock();
    if (!ec && s) s->on_deadline(id);
  });
}

void PluginSupervisor::cancel(uint64_t id) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->id == id) {
      auto submission = std::move(it->submission);
      it->timer->cancel();
      queue_.erase(it);
      submission.on_fail(cancelled_error(fmt::format("{}: cancelled before it started", who())));
      return;
    }
  }
  if (!in_flight_.contains(id)) return;
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(fbb, id, wire::Message::Cancel, wire::CreateCancel(fbb, id).Union());
  (void)send(fbb);
}

void PluginSupervisor::release_outputs(uint64_t generation,
                                       const std::vector<ipc::TensorView>& views) {
  if (!current_ || current_->generation != generation || !current_->channel) return;
  if (current_->worker == nullptr || current_->worker->exited()) return;
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TensorDesc>> descs;
  for (const auto& v : views) {
    auto desc = ipc::build_tensor_desc(fbb, v.name, v.dtype,
                                       std::span<const int64_t>(v.shape.data(), v.shape.size()),
                                       wire::Ring::WorkerToHost, v.slot());
    if (desc.ok()) descs.push_back(*desc);
  }
  ipc::finish_envelope(fbb, 0, wire::Message::Release,
                       wire::CreateReleaseDirect(fbb, &descs).Union());
  (void)send(fbb);
}

void PluginSupervisor::schedule_heartbeat() {
  if (settings_.heartbeat_interval.count() == 0) return;
  heartbeat_timer_.expires_after(settings_.heartbeat_interval);
  heartbeat_timer_.async_wait(
      [self = weak_from_this(), gen = generation_](const boost::system::error_code& ec) {
        auto s = self.lock();
        if (ec || !s || !s->current_ || s->current_->generation != gen) return;
        if (s->state_ != PluginState::kReady && s->state_ != PluginState::kDraining) return;
        if (s->heartbeat_sequence_ - s->heartbeat_answered_ >= s->settings_.heartbeat_misses) {
          return s->kill_worker(
              fmt::format("{} heartbeats in a row went unanswered", s->settings_.heartbeat_misses));
        }
        flatbuffers::FlatBufferBuilder fbb;
        ipc::finish_envelope(fbb, 0, wire::Message::Heartbeat,
                             wire::CreateHeartbeat(fbb, ++s->heartbeat_sequence_, false).Union());
        if (s->send(fbb).ok()) s->schedule_heartbeat();
      });
}

void PluginSupervisor::on_channel_end(const Status& status) {
  if (status.code() == ErrorCode::kInvalidArgument) {
    return kill_worker(fmt::format("protocol violation: {}", status.message()));
  }
  // The worker closed its end: it is exiting (a dying process's descriptors close before the
  // pidfd reports its exit, by about 0.3-2 ms in bench_host). New requests queue for the restart
  // from now on; in-flight ones end when the exit says how it died. Give the pidfd a moment,
  // then make sure.
  if (state_ == PluginState::kReady) set_state(PluginState::kCrashed);
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, milliseconds(1000));
  timer->async_wait(
      [self = weak_from_this(), gen = generation_, timer](const boost::system::error_code&) {
        auto s = self.lock();
        if (s && s->current_ && s->current_->generation == gen && s->current_->worker &&
            !s->current_->worker->exited()) {
          s->kill_worker("it closed its control channel but did not exit");
        }
      });
}

void PluginSupervisor::kill_worker(std::string reason) {
  if (!current_) return;
  if (current_->kill_reason.empty()) current_->kill_reason = std::move(reason);
  if (current_->reader) current_->reader->stop();
  if (current_->worker && !current_->worker->exited()) current_->worker->kill();
}

void PluginSupervisor::fail_all(const Status& status) {
  auto in_flight = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [id, entry] : in_flight) {
    if (entry.timer) entry.timer->cancel();
    if (!entry.abandoned) entry.submission.on_fail(status);
  }
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& q : queue) {
    q.timer->cancel();
    q.submission.on_fail(status);
  }
}

void PluginSupervisor::on_worker_exit(uint64_t generation, const sandbox::WorkerExit& exit) {
  if (!current_ || current_->generation != generation) return;
  std::shared_ptr<WorkerIncarnation> w = current_;
  start_timer_.cancel();
  heartbeat_timer_.cancel();
  stop_timer_.cancel();
  if (w->reader) w->reader->stop();
  std::string tail;
  if (w->log) {
    w->log->drain();
    tail = w->log->text();
    w->log->stop();
  }
  // Two reports of one death. `what` (the reason: how it ended, and why the host stopped it) is
  // what requests get; `details` adds the pid and the worker's last stderr lines, which in a
  // shared worker may hold another tenant's data, so they go to operators only: the host's log
  // and PluginStatus::last_crash (the admin API).
  std::string what = fmt::format(
      "{}: worker {}", who(), w->worker ? exit.to_string() : std::string("could not be started"));
  if (!w->kill_reason.empty()) what += fmt::format("; the host stopped it: {}", w->kill_reason);
  std::string details =
      fmt::format("{}: worker{} {}", who(),
                  w->worker ? fmt::format(" (pid {})", w->worker->pid()) : std::string(),
                  w->worker ? exit.to_string() : std::string("could not be started"));
  if (!w->kill_reason.empty()) details += fmt::format("; the host stopped it: {}", w->kill_reason);
  if (!tail.empty()) details += fmt::format("; last output: {}", tail);
  // The incarnation goes; leases keep its arena mapped for outputs the caller still holds.
  w->reader.reset();
  w->channel.reset();
  w->input_ring.reset();
  current_.reset();
  init_id_ = 0;

  if (state_ == PluginState::kDraining || state_ == PluginState::kStopped) {
    fail_all(unavailable_error(fmt::format("{} was deactivated", who())));
    set_state(PluginState::kStopped);
    if (on_stopped_) {
      auto cb = std::move(on_stopped_);
      on_stopped_ = nullptr;
      cb();
    }
    return;
  }
  if (w->worker) ++exits_[std::string(sandbox::exit_kind_name(exit.kind))];
  if (w->worker) std::fprintf(stderr, "pio host: %s\n", printable_for_log(details).c_str());
  if (on_ready_) {  // the first start failed: activation reports it, nothing restarts
    if (w->worker) {
      last_crash_ = details;
      last_crash_reason_ = what;
    }
    const Status status =
        w->spawn_error.ok() ? worker_crashed_error(what) : w->spawn_error.with_context(who());
    fail_all(status);
    set_state(PluginState::kStopped);
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    cb(status);
    return;
  }
  ++crashes_;
  last_crash_ = details;
  last_crash_reason_ = what;
  const auto now = Clock::now();
  crash_times_.push_back(now);
  while (!crash_times_.empty() && now - crash_times_.front() > settings_.restart.window)
    crash_times_.pop_front();
  // A library that no longer matches its manifest will not match on a retry either.
  const bool quarantine =
      w->library_refused || crash_times_.size() >= settings_.restart.max_crashes;
  // In-flight requests end now, except generations that continue on the restarted worker (ahead
  // of the requests queued meanwhile, in their order); queued ones wait for the restart (or fail
  // on quarantine).
  {
    auto in_flight = std::move(in_flight_);
    in_flight_.clear();
    const Status status = worker_crashed_error(what + "; the host restarts it");
    for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
      InFlight& entry = it->second;
      if (entry.timer) entry.timer->cancel();
      if (entry.abandoned) continue;
      Submission& submission = entry.submission;
      ++submission.crashes;
      if (!quarantine && w->can_resume && submission.resume &&
          submission.crashes < kMaxCrashesPerRequest && submission.resume()) {
        ++resumed_;
        enqueue(it->first, std::move(submission), entry.deadline, /*at_front=*/true);
        continue;
      }
      submission.on_fail(status);
    }
  }
  if (quarantine && w->library_refused) {
    set_state(PluginState::kQuarantined);
    fail_all(failed_precondition_error(
        fmt::format("{} is quarantined: {}; then deactivate and activate it again", who(), what)));
    return;
  }
  if (quarantine) {
    set_state(PluginState::kQuarantined);
    fail_all(failed_precondition_error(fmt::format(
        "{} is quarantined after {} crashes within {} ms (last: {}); fix the plugin, then "
        "deactivate and activate it again",
        who(), crash_times_.size(), settings_.restart.window.count(), what)));
    return;
  }
  set_state(PluginState::kBackoff);
  auto delay = settings_.restart.backoff_initial;
  for (size_t i = 1; i < crash_times_.size() && delay < settings_.restart.backoff_max; ++i)
    delay *= 2;
  delay = std::min(delay, settings_.restart.backoff_max);
  backoff_timer_.expires_after(delay);
  backoff_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
    auto s = self.lock();
    if (ec || !s || s->state_ != PluginState::kBackoff) return;
    s->set_state(PluginState::kRestarting);
    ++s->restarts_;
    s->spawn_worker();
  });
}

void PluginSupervisor::stop(std::function<void()> on_stopped) {
  const PluginState before = state_;
  set_state(PluginState::kDraining);
  on_stopped_ = std::move(on_stopped);
  {
    auto queue = std::move(queue_);
    queue_.clear();
    for (auto& q : queue) {
      q.timer->cancel();
      q.submission.on_fail(unavailable_error(fmt::format("{} is being deactivated", who())));
    }
  }
  backoff_timer_.cancel();
  if (!current_ || before == PluginState::kQuarantined || before == PluginState::kBackoff) {
    set_state(PluginState::kStopped);
    auto cb = std::move(on_stopped_);
    on_stopped_ = nullptr;
    if (cb) boost::asio::post(io_, cb);
    return;
  }
  if (before != PluginState::kReady) return kill_worker("deactivated while starting");
  if (in_flight_.empty()) after_drained();
}

void PluginSupervisor::after_drained() {
  if (!current_ || !current_->worker) return;
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(
      fbb, next_id_++, wire::Message::Shutdown,
      wire::CreateShutdownDirect(fbb, to_deadline_ms(settings_.shutdown_timeout), "deactivated")
          .Union());
  if (send(fbb).ok()) current_->worker->set_deadline(settings_.shutdown_timeout);
}

void PluginSupervisor::kill_now(const Status& why) {
  set_state(PluginState::kStopped);
  backoff_timer_.cancel();
  start_timer_.cancel();
  heartbeat_timer_.cancel();
  fail_all(why);
  if (on_ready_) {
    auto cb = std::move(on_ready_);
    on_ready_ = nullptr;
    cb(why);
  }
  kill_worker(why.message());
}

}  // namespace pio::host::internal
