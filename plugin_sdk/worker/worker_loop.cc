#include "internal/worker_loop.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>

#include "fmt/format.h"
#include "internal/worker_services.h"
#include "nlohmann/json.hpp"
#include "pio/ipc/envelope.h"
#include "pio/ipc/tensor_view.h"

#ifndef PIO_VERSION
#define PIO_VERSION "0"
#endif

namespace pio::sdk::worker {

namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// How long a send may wait for lane space before the worker decides the host is gone.
constexpr auto kSendTimeout = std::chrono::seconds(30);
// How long the host's end closing waits for a running verb before the worker exits anyway.
constexpr uint32_t kHostGoneDrainMs = 2'000;

std::string_view view_of(const flatbuffers::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->c_str(), s->size());
}

// The resident set size, and where it came from. /proc/self/statm is the current value, but
// landlock policies may not grant /proc; getrusage then gives the peak, which the Stats say.
std::pair<uint64_t, const char*> resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) {
    return {resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)), "current"};
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0)
    return {static_cast<uint64_t>(usage.ru_maxrss) * 1024, "peak"};
  return {0, "unknown"};
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

WorkerLoop::WorkerLoop(ipc::Channel& channel, const ipc::ShmArena& arena,
                       const ipc::ArenaLayout& layout, const pio_plugin_api& api,
                       pio_plugin* plugin, ModelRoots roots, ipc::ShmRing output_ring)
    : channel_(channel),
      arena_(arena),
      layout_(layout),
      api_(api),
      plugin_(plugin),
      roots_(std::move(roots)),
      outputs_(std::move(output_ring)) {}

WorkerLoop::~WorkerLoop() {
  if (executor_.joinable()) {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
      for (auto& [id, flag] : in_flight_) flag->store(true);
    }
    queue_cv_.notify_all();
    executor_.join();
  }
  if (plugin_ != nullptr) api_.destroy(plugin_);
}

// ---- sending ----

Status WorkerLoop::send(flatbuffers::FlatBufferBuilder& fbb) {
  std::lock_guard lock(send_mu_);
  return channel_.send(ipc::builder_bytes(fbb), {}, ipc::deadline_after(kSendTimeout));
}

void WorkerLoop::send_error(uint64_t id, const Status& status) {
  flatbuffers::FlatBufferBuilder fbb;
  auto error =
      wire::CreateError(fbb, ipc::to_wire(status.code()), fbb.CreateString(status.message()));
  ipc::finish_envelope(fbb, id, wire::Message::Error, error.Union());
  Status sent = send(fbb);
  if (!sent.ok())
    std::fprintf(stderr, "pio-worker: cannot send an error: %s\n", sent.to_string().c_str());
}

ipc::Deadline WorkerLoop::deadline_of(uint32_t deadline_ms) const {
  return deadline_ms == 0 ? ipc::Deadline::max() : ipc::deadline_after(milliseconds(deadline_ms));
}

// ---- channel thread ----

WorkerExitCode WorkerLoop::run() {
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<flatbuffers::String>> capabilities;
    if (api_.generate_text != nullptr) capabilities.push_back(fbb.CreateString(kCapabilityText));
    if (can_resume()) capabilities.push_back(fbb.CreateString(kCapabilityResume));
    auto hello = wire::CreateHelloDirect(fbb, static_cast<uint32_t>(wire::ProtocolVersion::Current),
                                         getpid(), "pio-worker " PIO_VERSION, api_.name,
                                         api_.abi_version, &capabilities);
    ipc::finish_envelope(fbb, 0, wire::Message::Hello, hello.Union());
    Status sent = send(fbb);
    if (!sent.ok()) {
      std::fprintf(stderr, "pio-worker: cannot send Hello: %s\n", sent.to_string().c_str());
      return WorkerExitCode::kChannel;
    }
  }
  executor_ = std::thread(&WorkerLoop::executor_main, this);

  ipc::InboundMessage in;
  for (;;) {
    Status received = channel_.receive(&in, ipc::Deadline::max());
    if (!received.ok()) {
      const bool host_closed = received.code() == ErrorCode::kUnavailable;
      if (!host_closed) {
        std::fprintf(stderr, "pio-worker: control channel: %s\n", received.to_string().c_str());
      }
      // Nobody is listening any more: stop without sending anything (a send could only wait).
      WorkerExitCode code = shutdown(std::nullopt, kHostGoneDrainMs);
      return host_closed ? code : WorkerExitCode::kChannel;
    }
    const uint64_t id = in.request_id();
    switch (in.type()) {
      case wire::Message::Initialize:
      case wire::Message::LoadModel:
      case wire::Message::Infer:
      case wire::Message::Generate:
        enqueue(in);
        break;
      case wire::Message::Cancel:
        cancel(in.envelope().message_as_Cancel()->target_request_id());
        break;
      case wire::Message::Release:
        release(in);
        break;
      case wire::Message::Heartbeat:
        answer_heartbeat(in);
        break;
      case wire::Message::Stats:
        answer_stats(id);
        break;
      case wire::Message::Shutdown:
        return shutdown(id, in.envelope().message_as_Shutdown()->deadline_ms());
      default:
        send_error(id,
                   invalid_argument_error(fmt::format("pio-worker does not accept {} from the host",
                                                      ipc::message_type_name(in.type()))));
        break;
    }
  }
}

void WorkerLoop::enqueue(const ipc::InboundMessage& message) {
  Request request;
  request.id = message.request_id();
  request.bytes.assign(message.bytes().begin(), message.bytes().end());
  request.cancelled = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(queue_mu_);
    in_flight_[request.id] = request.cancelled;
    queue_.push_back(std::move(request));
  }
  queue_cv_.notify_one();
}

void WorkerLoop::cancel(uint64_t target) {
  std::lock_guard lock(queue_mu_);
  auto it = in_flight_.find(target);
  if (it != in_flight_.end()) it->second->store(true, std::memory_order_relaxed);
}

void WorkerLoop::release(const ipc::InboundMessage& message) {
  const auto* tensors = message.envelope().message_as_Release()->tensors();
  if (tensors == nullptr) return;
  Status first_error;
  for (const wire::TensorDesc* desc : *tensors) {
    Status status =
        desc->ring() != wire::Ring::WorkerToHost
            ? invalid_argument_error("Release: a tensor that is not in the worker->host ring")
            : outputs_.release(ipc::RingSlot{desc->offset(), desc->length()});
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  if (!first_error.ok()) send_error(message.request_id(), first_error);
}

void WorkerLoop::answer_heartbeat(const ipc::InboundMessage& message) {
  const auto* beat = message.envelope().message_as_Heartbeat();
  if (beat->reply()) return;  // an answer to a heartbeat of ours; the worker sends none
  flatbuffers::FlatBufferBuilder fbb;
  auto reply = wire::CreateHeartbeat(fbb, beat->sequence(), true);
  ipc::finish_envelope(fbb, message.request_id(), wire::Message::Heartbeat, reply.Union());
  send(fbb).ignore();
}

void WorkerLoop::answer_stats(uint64_t id) {
  uint32_t in_flight = 0;
  {
    std::lock_guard lock(queue_mu_);
    in_flight = static_cast<uint32_t>(in_flight_.size());
  }
  flatbuffers::FlatBufferBuilder fbb;
  const auto [rss, rss_source] = resident_bytes();
  std::vector<flatbuffers::Offset<wire::KeyValue>> values;
  values.push_back(wire::CreateKeyValueDirect(fbb, "output_slots_live",
                                              std::to_string(outputs_.live_count()).c_str()));
  values.push_back(wire::CreateKeyValueDirect(fbb, "rss_source", rss_source));
  auto stats =
      wire::CreateStats(fbb, rss, 0, in_flight, tokens_generated_.load(std::memory_order_relaxed),
                        fbb.CreateVectorOfSortedTables(&values));
  ipc::finish_envelope(fbb, id, wire::Message::Stats, stats.Union());
  send(fbb).ignore();
}

WorkerExitCode WorkerLoop::shutdown(std::optional<uint64_t> id, uint32_t deadline_ms) {
  std::deque<Request> dropped;
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
    for (auto& [request_id, flag] : in_flight_) flag->store(true, std::memory_order_relaxed);
    dropped.swap(queue_);
  }
  queue_cv_.notify_all();
  if (id.has_value()) {
    for (const Request& request : dropped) {
      send_error(request.id, cancelled_error("the worker is shutting down"));
    }
  }
  {
    std::unique_lock lock(queue_mu_);
    const auto deadline = deadline_of(deadline_ms == 0 ? kHostGoneDrainMs : deadline_ms);
    if (!idle_cv_.wait_until(lock, deadline, [&] { return !executor_busy_; })) {
      // The plugin does not return from a verb. Its state is unknown: exit without calling it.
      lock.unlock();
      if (id.has_value()) {
        send_error(*id, deadline_exceeded_error(fmt::format(
                            "shutdown: plugin {} did not return from a verb within {} ms; exiting "
                            "without cleanup",
                            api_.name, deadline_ms)));
      }
      (void)std::fflush(stderr);
      std::_Exit(static_cast<int>(WorkerExitCode::kOk));
    }
  }
  executor_.join();
  Status cleaned = take_error(api_.cleanup(plugin_));
  if (!cleaned.ok()) {
    std::fprintf(stderr, "pio-worker: plugin cleanup: %s\n", cleaned.to_string().c_str());
  }
  api_.destroy(plugin_);
  plugin_ = nullptr;
  if (id.has_value()) {
    flatbuffers::FlatBufferBuilder fbb;
    auto result = wire::CreateResult(fbb);
    ipc::finish_envelope(fbb, *id, wire::Message::Result, result.Union());
    send(fbb).ignore();
  }
  return WorkerExitCode::kOk;
}

// ---- executor thread ----

void WorkerLoop::executor_main() {
  for (;;) {
    Request request;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      request = std::move(queue_.front());
      queue_.pop_front();
      executor_busy_ = true;
    }
    execute(request);
    {
      std::lock_guard lock(queue_mu_);
      in_flight_.erase(request.id);
      executor_busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

void WorkerLoop::execute(const Request& request) {
  // Verified by the channel before it was copied here; the copy is private memory.
  const auto* envelope = flatbuffers::GetRoot<wire::Envelope>(request.bytes.data());
  if (request.cancelled->load(std::memory_order_relaxed)) {
    // Cancelled while it waited: the plugin never sees it.
    if (envelope->message_type() != wire::Message::Generate) {
      return send_error(request.id, cancelled_error("cancelled by the host before it started"));
    }
    flatbuffers::FlatBufferBuilder fbb;
    auto chunk = wire::CreateTokenChunk(fbb, 0, 0, 0, wire::FinishReason::Cancelled);
    ipc::finish_envelope(fbb, request.id, wire::Message::TokenChunk, chunk.Union());
    send(fbb).ignore();
    return;
  }
  const bool is_initialize = envelope->message_type() == wire::Message::Initialize;
  if (is_initialize == initialized_) {
    return send_error(request.id,
                      failed_precondition_error(
                          is_initialize ? fmt::format("plugin {} is already initialized; send "
                                                      "pio.cleanup before initializing it again",
                                                      api_.name)
                                        : fmt::format("plugin {} is not initialized; send "
                                                      "Initialize first",
                                                      api_.name)));
  }
  switch (envelope->message_type()) {
    case wire::Message::Initialize:
      run_initialize(request, *envelope->message_as_Initialize());
      break;
    case wire::Message::LoadModel:
      run_load_model(request, *envelope->message_as_LoadModel());
      break;
    case wire::Message::Infer:
      run_infer(request, *envelope->message_as_Infer());
      break;
    case wire::Message::Generate:
      run_generate(request, *envelope->message_as_Generate());
      break;
    default:
      PIO_CHECK(false && "only plugin verbs are queued");
  }
}

void WorkerLoop::run_initialize(const Request& request, const wire::Initialize& message) {
  const std::string_view config = view_of(message.config_json());
  Status status = take_error(api_.initialize(plugin_, config.data(), config.size()));
  if (!status.ok()) return send_error(request.id, status);
  initialized_ = true;
  CallState empty;
  answer_result(request.id, empty);
}

void WorkerLoop::run_load_model(const Request& request, const wire::LoadModel& message) {
  const std::string path(view_of(message.path()));
  const std::string_view config = view_of(message.config_json());
  UniqueFd fd;
  if (!path.empty()) {
    if (!roots_.guard.has_value() || roots_.guard->roots().empty()) {
      return send_error(request.id, permission_denied_error(fmt::format(
                                        "load_model: \"{}\" refused: this worker was given no "
                                        "model roots (--model-root)",
                                        path)));
    }
    auto split = roots_.guard->split(path);
    if (!split.ok()) return send_error(request.id, split.status());
    auto opened = open_beneath(roots_.fds[split->first].get(), split->second.string());
    if (!opened.ok()) {
      return send_error(request.id, opened.status().with_context(
                                        fmt::format("load_model: \"{}\" (model roots {})", path,
                                                    roots_.guard->roots_text())));
    }
    fd = std::move(*opened);
  }
  const pio_model_source source{sizeof(pio_model_source), path.c_str(), fd.get()};
  Status status = take_error(api_.load_model(plugin_, &source, config.data(), config.size()));
  if (!status.ok()) return send_error(request.id, status);
  CallState empty;
  answer_result(request.id, empty);
}

void WorkerLoop::run_infer(const Request& request, const wire::Infer& message) {
  CallState call;
  call.ring = &outputs_;
  call.arena_base = arena_.data();
  call.cancelled = request.cancelled.get();
  call.deadline = deadline_of(message.deadline_ms());

  // Check every descriptor before the plugin sees any; keep the checked copies alive (the C
  // views point into them), and build the C views only once the vector no longer grows.
  const ipc::RegionBounds bounds{arena_.data(), layout_.ring_host_to_worker().offset,
                                 layout_.ring_host_to_worker().size};
  std::vector<ipc::TensorView> views;
  if (message.inputs() != nullptr) {
    views.reserve(message.inputs()->size());
    for (flatbuffers::uoffset_t i = 0; i < message.inputs()->size(); ++i) {
      auto view =
          ipc::validate_tensor_desc(message.inputs()->Get(i), wire::Ring::HostToWorker, bounds);
      if (!view.ok()) {
        return send_error(request.id,
                          view.status().with_context(fmt::format("infer: input {}", i)));
      }
      views.push_back(std::move(*view));
    }
  }
  std::vector<pio_tensor_view> inputs;
  inputs.reserve(views.size());
  for (const auto& v : views) {
    inputs.push_back(pio_tensor_view{sizeof(pio_tensor_view), v.name.c_str(),
                                     static_cast<pio_dtype>(v.dtype), v.shape.data(),
                                     static_cast<uint32_t>(v.shape.size()), v.data, v.length});
  }

  Status status = dispatch_command(view_of(message.command()), message, inputs, call);
  if (status.ok() && request.cancelled->load(std::memory_order_relaxed)) {
    status = cancelled_error("infer: cancelled by the host");
  }
  if (!status.ok()) {
    call.drop_outputs();
    return send_error(request.id, status);
  }
  answer_result(request.id, call);
}

Status WorkerLoop::dispatch_command(std::string_view command, const wire::Infer& message,
                                    const std::vector<pio_tensor_view>& inputs, CallState& call) {
  const std::string_view params = view_of(message.params_json());
  auto missing = [&](std::string_view verb) {
    return unimplemented_error(fmt::format("{}: plugin {} does not implement it", verb, api_.name));
  };
  auto parsed_params = [&]() -> Result<Json> {
    Json json = Json::parse(params.begin(), params.end(), nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      return invalid_argument_error(fmt::format("{}: params_json is not a JSON object", command));
    }
    return json;
  };
  pio_call* c = as_call(&call);

  if (command.empty() || command == kCommandInfer) {
    return take_error(api_.infer(plugin_, c, inputs.data(), inputs.size()));
  }
  if (command == kCommandGetModelInfo) {
    if (api_.get_model_info == nullptr) return missing(command);
    return take_error(api_.get_model_info(plugin_, c));
  }
  if (command == kCommandSupportsConfig) {
    if (api_.supports_config == nullptr) return missing(command);
    int supported = 0;
    PIO_RETURN_IF_ERROR(
        take_error(api_.supports_config(plugin_, params.data(), params.size(), &supported)));
    call.json = dump(Json{{"supported", supported != 0}});
    return ok_status();
  }
  if (command == kCommandUpdateConfig) {
    if (api_.update_config == nullptr) return missing(command);
    return take_error(api_.update_config(plugin_, params.data(), params.size()));
  }
  if (command == kCommandInstall) {
    if (api_.install == nullptr) return missing(command);
    return take_error(api_.install(plugin_));
  }
  if (command == kCommandCleanup) {
    initialized_ = false;  // even a failed cleanup leaves the plugin's state unknown
    return take_error(api_.cleanup(plugin_));
  }
  if (command == kCommandTokenize) {
    if (api_.tokenize == nullptr) return missing(command);
    PIO_ASSIGN_OR_RETURN(Json p, parsed_params());
    if (!p.contains("text") || !p["text"].is_string()) {
      return invalid_argument_error("pio.tokenize: params_json must be {\"text\": \"...\"}");
    }
    const std::string& text = p["text"].get_ref<const std::string&>();
    PIO_RETURN_IF_ERROR(take_error(api_.tokenize(plugin_, c, text.data(), text.size())));
    call.json = dump(Json{{"token_ids", call.tokens}});
    return ok_status();
  }
  if (command == kCommandDetokenize) {
    if (api_.detokenize == nullptr) return missing(command);
    PIO_ASSIGN_OR_RETURN(Json p, parsed_params());
    std::vector<int32_t> ids;
    const bool good = p.contains("token_ids") && p["token_ids"].is_array();
    if (good) {
      for (const Json& id : p["token_ids"]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
            id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
          return invalid_argument_error("pio.detokenize: token_ids must be integers in [0, 2^31)");
        }
        ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    } else {
      return invalid_argument_error("pio.detokenize: params_json must be {\"token_ids\": [...]}");
    }
    PIO_RETURN_IF_ERROR(take_error(api_.detokenize(plugin_, c, ids.data(), ids.size())));
    call.json = dump(Json{{"text", call.text}});
    return ok_status();
  }
  if (command.starts_with(kCommandReservedPrefix)) {
    return not_found_error(fmt::format("\"{}\": no such worker command", command));
  }
  if (api_.execute == nullptr) return missing("execute");
  const std::string name(command);
  return take_error(api_.execute(plugin_, c, name.c_str(), params.data(), params.size(),
                                 inputs.data(), inputs.size()));
}

void WorkerLoop::answer_result(uint64_t id, CallState& call) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TensorDesc>> descs;
  descs.reserve(call.outputs.size());
  for (const OutputTensor& out : call.outputs) {
    auto desc = ipc::build_tensor_desc(fbb, out.name, out.dtype,
                                       std::span(out.shape.data(), out.shape.size()),
                                       wire::Ring::WorkerToHost, out.slot);
    if (!desc.ok()) {
      call.drop_outputs();
      return send_error(id, desc.status().with_context("infer: an output the plugin allocated"));
    }
    descs.push_back(*desc);
  }
  auto outputs = descs.empty() ? 0 : fbb.CreateVector(descs);
  auto json = call.json.has_value() ? fbb.CreateString(*call.json) : 0;
  auto result = wire::CreateResult(fbb, outputs, json);
  ipc::finish_envelope(fbb, id, wire::Message::Result, result.Union());
  Status sent = send(fbb);
  if (!sent.ok()) {
    // The host never learns of these slots, so nobody would release them.
    call.drop_outputs();
    std::fprintf(stderr, "pio-worker: cannot send a result: %s\n", sent.to_string().c_str());
  }
}

}  // namespace pio::sdk::worker
