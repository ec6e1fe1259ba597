#include "pio/host/host.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "fmt/format.h"
#include "internal/output_lease.h"
#include "internal/plugin_supervisor.h"
#include "internal/worker_text.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/spin_wait.h"
#include "pio/plugin_sdk/path_guard.h"
#include "pio/sandbox/policy.h"

namespace pio {

using host::internal::PluginSupervisor;
using host::internal::Submission;
using host::internal::worker_text;
using host::internal::WorkerIncarnation;

namespace {

// Generated text kept for one request; a worker that streams without end is stopped here.
constexpr size_t kMaxGeneratedBytes = 64u << 20;

// How long a caller of Impl::run polls for its answer before it sleeps. A small request's answer
// comes 15-20 us after the post, and a caller that sleeps pays a wake-up of its idle vCPU on top
// (bench_host, small request: 99 us with a futex wait; polling 20 us: 70-80 us, as the answer
// often comes later; 50 us: 18-22 us; 100 us: 16-20 us). Yielding (ipc::spin_until), and only
// while this caller waits, so an idle Host burns nothing.
constexpr auto kCallerSpin = std::chrono::microseconds(50);

// One answer from the loop to a caller of Impl::run: set once on the loop, taken once by the
// caller.
template <typename T>
class Answer {
 public:
  void set(T value) {
    {
      std::lock_guard lock(mu_);
      value_.emplace(std::move(value));
      ready_.store(true, std::memory_order_release);
    }
    cv_.notify_one();
  }
  T take() {
    if (!ipc::spin_until([this] { return ready_.load(std::memory_order_acquire); }, kCallerSpin)) {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return ready_.load(std::memory_order_relaxed); });
    }
    return std::move(*value_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> ready_{false};
  std::optional<T> value_;
};

Result<std::string> merge_config(const host::PluginManifest& manifest,
                                 const host::PluginSettings& settings,
                                 const std::string& options_json) {
  nlohmann::json merged = nlohmann::json::parse(manifest.default_config_json, nullptr, false);
  if (!merged.is_object()) merged = nlohmann::json::object();
  for (const std::string* layer : {&settings.config_json, &options_json}) {
    if (layer->empty()) continue;
    nlohmann::json patch = nlohmann::json::parse(*layer, nullptr, false);
    if (!patch.is_object()) {
      return invalid_argument_error(
          fmt::format("plugin \"{}\": config {} is not a JSON object", manifest.name, *layer));
    }
    merged.merge_patch(patch);
  }
  return merged.dump();
}

host::FinishReason from_wire(wire::FinishReason reason) {
  switch (reason) {
    case wire::FinishReason::Length:
      return host::FinishReason::kLength;
    case wire::FinishReason::Cancelled:
      return host::FinishReason::kCancelled;
    case wire::FinishReason::Error:
      return host::FinishReason::kError;
    default:
      return host::FinishReason::kStop;
  }
}

Status error_from(const ipc::InboundMessage& message, std::string_view plugin) {
  const auto* error = message.envelope().message_as_Error();
  return Status(ipc::from_wire(error->code()),
                fmt::format("plugin \"{}\": {}", plugin, worker_text(error->message())));
}

}  // namespace

struct Host::Impl {
  host::HostConfig config;
  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::thread loop;
  std::shared_ptr<host::internal::LoopPoster> poster;
  std::unique_ptr<sandbox::WorkerLauncher> launcher;
  std::filesystem::path own_scratch;  // made by this Host, removed with it

  std::mutex registry_mu;
  host::PluginRegistry registry;

  // How an active plugin was started, so that activate_instance can start another the same way.
  struct Activation {
    host::PluginManifest manifest;
    host::PluginSettings settings;
    std::string config_json;
    std::optional<std::filesystem::path> model_path;
  };

  // Loop thread only. Keys: a plugin's name, or "<name>@<instance>".
  std::map<std::string, std::shared_ptr<PluginSupervisor>, std::less<>> active;
  std::map<std::string, Activation, std::less<>> activations;

  // Starts a supervisor for `activation` under `key` (loop thread); done(ok) once ready.
  void start_supervisor(const std::string& key, const std::string& instance, Activation activation,
                        const std::function<void(Status)>& done) {
    if (active.contains(key)) {
      return done(failed_precondition_error(fmt::format(
          "plugin \"{}\" is already active (deactivate_plugin first to restart it)", key)));
    }
    auto policy = policy_for(activation.settings.trust_level);
    if (!policy.ok()) {
      return done(policy.status().with_context(
          fmt::format("plugin \"{}\": trust level {}", key,
                      sandbox::trust_level_name(activation.settings.trust_level))));
    }
    auto supervisor = std::make_shared<PluginSupervisor>(
        io, *launcher, *policy, activation.manifest, activation.settings, config.worker_path,
        activation.config_json, activation.model_path, poster);
    supervisor->set_instance(instance);
    active[key] = supervisor;
    activations[key] = std::move(activation);
    supervisor->start([this, key, supervisor, done](const Status& status) {
      if (!status.ok()) {
        auto it = active.find(key);
        if (it != active.end() && it->second == supervisor) {
          active.erase(it);
          activations.erase(key);
        }
      }
      done(status);
    });
  }
  std::map<sandbox::TrustLevel, std::shared_ptr<const sandbox::CompiledPolicy>> policies;

  bool on_loop() const { return std::this_thread::get_id() == loop.get_id(); }

  // Runs `fn(done)` on the loop; `fn` calls done(value) once, now or later. Waits for it.
  template <typename T, typename Fn>
  T run(Fn fn) {
    if (on_loop()) {
      return T(
          failed_precondition_error("a Host method was called on the Host's loop thread "
                                    "(from a TokenCallback?); call it from another thread"));
    }
    auto answer = std::make_shared<Answer<T>>();
    boost::asio::post(io, [fn = std::move(fn), answer]() mutable {
      auto fired = std::make_shared<bool>(false);
      fn([answer, fired](T value) {
        if (*fired) return;
        *fired = true;
        answer->set(std::move(value));
      });
    });
    return answer->take();
  }

  Result<std::shared_ptr<const sandbox::CompiledPolicy>> policy_for(sandbox::TrustLevel level) {
    auto it = policies.find(level);
    if (it != policies.end()) return it->second;
    PIO_ASSIGN_OR_RETURN(sandbox::Policy policy, sandbox::load_policy(config.policy_dir, level));
    PIO_ASSIGN_OR_RETURN(auto compiled, launcher->compile(policy));
    policies[level] = compiled;
    return compiled;
  }

  Result<std::shared_ptr<PluginSupervisor>> find_active(std::string_view name) {
    auto it = active.find(name);
    if (it == active.end()) {
      return failed_precondition_error(
          fmt::format("plugin \"{}\" is not active (activate_plugin first)", name));
    }
    return it->second;
  }

  void submit_generate(std::string_view name, std::string prompt, std::string messages_json,
                       const host::GenerateOptions& options, host::TokenCallback on_chunk,
                       const std::function<void(Result<host::GenerateResult>)>& done);
};

Host::Host(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Host>> Host::create(host::HostConfig config) {
  auto impl = std::make_unique<Impl>();
  static std::atomic<uint64_t> instances{0};
  if (config.instance_name.empty()) {
    config.instance_name = fmt::format("pio{}-{}", getpid(), instances++);
  }
  if (config.scratch_root.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pio-host-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return errno_status("scratch dir for the Host", errno);
    chmod(tmpl.c_str(), 0755);  // the workers' own identity must reach their scratch dirs below
    config.scratch_root = tmpl;
    impl->own_scratch = tmpl;
  }
  std::error_code ec;
  if (!std::filesystem::exists(config.worker_path, ec)) {
    return not_found_error(
        fmt::format("pio-worker not found at {} (set worker_path in the host "
                    "config or $PIO_WORKER)",
                    config.worker_path.string()));
  }
  sandbox::LauncherOptions options;
  options.instance_name = config.instance_name;
  options.scratch_root = config.scratch_root;
  options.cgroup_base = config.cgroup_base;
  options.allow_degraded = config.allow_degraded;
  auto launcher = sandbox::WorkerLauncher::create(impl->io, options);
  if (!launcher.ok()) {
    if (!impl->own_scratch.empty()) std::filesystem::remove_all(impl->own_scratch, ec);
    return launcher.status().with_context("Host: the sandbox launcher could not start");
  }
  impl->launcher = std::move(*launcher);
  impl->config = std::move(config);
  impl->work.emplace(impl->io.get_executor());
  Impl* raw = impl.get();
  impl->poster = std::make_shared<host::internal::LoopPoster>(
      [raw](std::function<void()> fn) { boost::asio::post(raw->io, std::move(fn)); });
  impl->loop = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<Host>(new Host(std::move(impl)));
}

Host::~Host() {
  Impl& impl = *impl_;
  impl.poster->close();
  std::promise<void> done;
  boost::asio::post(impl.io, [&impl, &done] {
    for (auto& [name, supervisor] : impl.active) {
      supervisor->kill_now(
          unavailable_error(fmt::format("plugin \"{}\": the host is shutting down", name)));
    }
    impl.active.clear();  // each live Worker is killed and reaped as its last reference goes
    impl.policies.clear();
    impl.launcher.reset();
    done.set_value();
  });
  done.get_future().wait();
  impl.work.reset();
  impl.io.stop();
  impl.loop.join();
  if (!impl.own_scratch.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(impl.own_scratch, ec);
  }
}

const host::HostConfig& Host::config() const { return impl_->config; }

host::DiscoveryReport Host::discover_and_load_plugins() {
  host::DiscoveryReport all;
  for (const auto& dir : impl_->config.plugin_dirs) {
    auto report = load_plugins_from_directory(dir);
    all.loaded.insert(all.loaded.end(), report.loaded.begin(), report.loaded.end());
    all.skipped.insert(all.skipped.end(), report.skipped.begin(), report.skipped.end());
  }
  return all;
}

host::DiscoveryReport Host::load_plugins_from_directory(const std::filesystem::path& dir) {
  std::lock_guard lock(impl_->registry_mu);
  auto report = impl_->registry.load_plugins_from_directory(dir);
  for (const auto& skipped : report.skipped) {
    std::fprintf(stderr, "pio host: skipped a plugin: %s\n", skipped.message().c_str());
  }
  return report;
}

Result<host::PluginManifest> Host::register_plugin(const std::filesystem::path& plugin_dir) {
  std::lock_guard lock(impl_->registry_mu);
  return impl_->registry.register_plugin(plugin_dir);
}

std::vector<host::PluginStatus> Host::list_plugins() {
  std::vector<host::PluginManifest> manifests;
  {
    std::lock_guard lock(impl_->registry_mu);
    manifests = impl_->registry.list();
  }
  using Out = std::vector<host::PluginStatus>;
  auto result = impl_->run<Result<Out>>([this, manifests](auto done) {
    Out out;
    for (const auto& m : manifests) {
      auto it = impl_->active.find(m.name);
      if (it != impl_->active.end()) {
        out.push_back(it->second->status());
      } else {
        host::PluginStatus s;
        s.name = m.name;
        s.version = m.version;
        out.push_back(s);
      }
      for (auto i = impl_->active.lower_bound(m.name + "@");
           i != impl_->active.end() && i->first.starts_with(m.name + "@"); ++i) {
        out.push_back(i->second->status());
      }
    }
    done(std::move(out));
  });
  return result.ok() ? *result : Out{};
}

Result<host::PluginStatus> Host::plugin_status(std::string_view name) {
  return impl_->run<Result<host::PluginStatus>>([this, n = std::string(name)](auto done) {
    auto supervisor = impl_->find_active(n);
    if (!supervisor.ok()) return done(supervisor.status());
    done((*supervisor)->status());
  });
}

Status Host::activate_plugin(std::string_view name, host::ActivateOptions options) {
  host::PluginManifest manifest;
  {
    std::lock_guard lock(impl_->registry_mu);
    PIO_ASSIGN_OR_RETURN(manifest, impl_->registry.find(name));
  }
  // The library may have changed since it was registered: check it again before a worker loads it.
  PIO_RETURN_IF_ERROR(host::verify_plugin_library(manifest));
  const host::PluginSettings& settings = impl_->config.settings_for(manifest.name);
  PIO_ASSIGN_OR_RETURN(std::string config_json,
                       merge_config(manifest, settings, options.config_json));
  std::optional<std::filesystem::path> model_path;
  if (options.model_path.has_value()) {
    if (settings.model_roots.empty()) {
      return permission_denied_error(
          fmt::format("plugin \"{}\": load_model \"{}\" refused: the plugin has no model_roots in "
                      "the host config",
                      manifest.name, *options.model_path));
    }
    PIO_ASSIGN_OR_RETURN(auto guard, sdk::PathGuard::create(settings.model_roots));
    auto resolved = guard.resolve(*options.model_path);
    if (!resolved.ok())
      return resolved.status().with_context(fmt::format("plugin \"{}\"", manifest.name));
    model_path = *resolved;
  }
  return impl_->run<Status>([this, manifest, settings, config_json, model_path](auto done) mutable {
    const std::string key = manifest.name;
    impl_->start_supervisor(key, "", {manifest, settings, config_json, model_path}, done);
  });
}

Status Host::activate_instance(std::string_view name, std::string_view instance) {
  const bool valid =
      !instance.empty() && instance.size() <= 48 &&
      std::all_of(instance.begin(), instance.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
  if (!valid) {
    return invalid_argument_error(
        fmt::format("plugin \"{}\": instance \"{}\": use 1-48 letters, digits, '_', '-' or '.'",
                    name, instance));
  }
  return impl_->run<Status>([this, n = std::string(name), i = std::string(instance)](auto done) {
    auto base = impl_->activations.find(n);
    if (base == impl_->activations.end() || n.find('@') != std::string::npos) {
      return done(failed_precondition_error(fmt::format(
          "plugin \"{}\" is not active: activate_plugin it before an instance of it", n)));
    }
    impl_->start_supervisor(n + "@" + i, i, base->second, done);
  });
}

Status Host::restart_plugin(std::string_view name) {
  return impl_->run<Status>([this, key = std::string(name)](auto done) {
    auto supervisor = impl_->find_active(key);
    if (!supervisor.ok()) return done(supervisor.status());
    auto activation = impl_->activations.find(key);
    if (activation == impl_->activations.end()) {
      return done(
          internal_error(fmt::format("plugin \"{}\" is active without an activation", key)));
    }
    Impl::Activation again = activation->second;
    const size_t at = key.find('@');
    const std::string instance = at == std::string::npos ? "" : key.substr(at + 1);
    std::shared_ptr<PluginSupervisor> s = *supervisor;
    s->stop([this, key, instance, s, again = std::move(again), done]() mutable {
      auto it = impl_->active.find(key);
      if (it != impl_->active.end() && it->second == s) {
        impl_->active.erase(it);
        impl_->activations.erase(key);
      }
      impl_->start_supervisor(key, instance, std::move(again), done);
    });
  });
}

Status Host::deactivate_plugin(std::string_view name) {
  return impl_->run<Status>([this, n = std::string(name)](auto done) {
    auto supervisor = impl_->find_active(n);
    if (!supervisor.ok()) return done(supervisor.status());
    // A plugin's instances go with it.
    std::vector<std::string> keys = {n};
    if (n.find('@') == std::string::npos) {
      for (const auto& [key, ignored] : impl_->active) {
        if (key.starts_with(n + "@")) keys.push_back(key);
      }
    }
    auto left = std::make_shared<size_t>(keys.size());
    for (const std::string& key : keys) {
      std::shared_ptr<PluginSupervisor> s = impl_->active[key];
      s->stop([this, key, s, left, done] {
        auto it = impl_->active.find(key);
        if (it != impl_->active.end() && it->second == s) {
          impl_->active.erase(it);
          impl_->activations.erase(key);
        }
        if (--*left == 0) done(ok_status());
      });
    }
  });
}

Result<host::InferOutputs> Host::execute_plugin(std::string_view name, host::InferRequest request) {
  using Out = Result<host::InferOutputs>;
  return impl_->run<Out>([this, n = std::string(name),
                          request = std::move(request)](auto done) mutable {
    auto found = impl_->find_active(n);
    if (!found.ok()) return done(found.status());
    std::shared_ptr<PluginSupervisor> supervisor = *found;
    const uint64_t id = supervisor->next_request_id();
    Submission submission;
    submission.deadline = request.deadline.value_or(std::chrono::milliseconds(0));
    submission.build = [n, request = std::move(request), deadline = submission.deadline](
                           uint64_t rid, WorkerIncarnation& w, flatbuffers::FlatBufferBuilder& fbb,
                           std::vector<ipc::RingSlot>& slots) -> Status {
      std::vector<flatbuffers::Offset<wire::TensorDesc>> descs;
      for (const auto& input : request.inputs) {
        PIO_ASSIGN_OR_RETURN(uint64_t bytes, ipc::tensor_byte_size(input.dtype, input.shape));
        if (bytes != input.data.size()) {
          return invalid_argument_error(
              fmt::format("plugin \"{}\": input \"{}\": shape and dtype make {} "
                          "bytes, the data has {}",
                          n, input.name, bytes, input.data.size()));
        }
        auto slot = w.input_ring->allocate(bytes);
        if (!slot.ok())
          return slot.status().with_context(
              fmt::format("plugin \"{}\": input \"{}\"", n, input.name));
        slots.push_back(*slot);
        if (bytes > 0) std::memcpy(w.arena->data() + slot->offset, input.data.data(), bytes);
        PIO_ASSIGN_OR_RETURN(auto desc,
                             ipc::build_tensor_desc(fbb, input.name, input.dtype, input.shape,
                                                    wire::Ring::HostToWorker, *slot));
        descs.push_back(desc);
      }
      ipc::finish_envelope(
          fbb, rid, wire::Message::Infer,
          wire::CreateInferDirect(fbb, &descs, request.command.c_str(), request.params_json.c_str(),
                                  static_cast<uint32_t>(deadline.count()))
              .Union());
      return ok_status();
    };
    std::weak_ptr<PluginSupervisor> weak = supervisor;
    auto poster = supervisor->poster();
    submission.on_message = [n, done, weak, poster](ipc::InboundMessage& message,
                                                    WorkerIncarnation& w) -> Result<bool> {
      if (message.type() == wire::Message::Error) {
        done(error_from(message, n));
        return true;
      }
      if (message.type() != wire::Message::Result) {
        return invalid_argument_error(
            fmt::format("plugin \"{}\": protocol violation: {} answers an infer", n,
                        ipc::message_type_name(message.type())));
      }
      const auto* result = message.envelope().message_as_Result();
      std::vector<ipc::TensorView> views;
      const ipc::RegionBounds bounds{w.arena->data(), w.layout->ring_worker_to_host().offset,
                                     w.layout->ring_worker_to_host().size};
      if (result->outputs() != nullptr) {
        for (const auto* desc : *result->outputs()) {
          auto view = ipc::validate_tensor_desc(desc, wire::Ring::WorkerToHost, bounds);
          if (!view.ok()) {
            return view.status().with_context(
                fmt::format("plugin \"{}\": invalid output (the worker is killed)", n));
          }
          views.push_back(std::move(*view));
        }
      }
      std::shared_ptr<host::internal::OutputLease> lease;
      if (!views.empty()) {
        lease = std::make_shared<host::internal::OutputLease>(
            w.arena, views, poster,
            [weak, gen = w.generation](const std::vector<ipc::TensorView>& v) {
              if (auto s = weak.lock()) s->release_outputs(gen, v);
            });
      }
      done(host::InferOutputs(std::move(views), worker_text(result->json()), std::move(lease)));
      return true;
    };
    submission.on_fail = [done](const Status& status) { done(status); };
    supervisor->submit(id, std::move(submission));
  });
}

void Host::Impl::submit_generate(std::string_view name, std::string prompt,
                                 std::string messages_json, const host::GenerateOptions& options,
                                 host::TokenCallback on_chunk,
                                 const std::function<void(Result<host::GenerateResult>)>& done) {
  auto found = find_active(name);
  if (!found.ok()) return done(found.status());
  std::shared_ptr<PluginSupervisor> supervisor = *found;
  const uint64_t id = supervisor->next_request_id();
  const std::string n(name);
  Submission submission;
  submission.deadline = options.deadline.value_or(std::chrono::milliseconds(0));
  auto result = std::make_shared<host::GenerateResult>();
  // Set once the worker died mid-generation and the request continues on the next one: each
  // later Generate carries the tokens the caller already has (result->token_ids).
  auto resuming = std::make_shared<bool>(false);
  const auto started = std::chrono::steady_clock::now();
  submission.build = [prompt = std::move(prompt), messages_json = std::move(messages_json), options,
                      stream = static_cast<bool>(on_chunk), result, resuming, started](
                         uint64_t rid, WorkerIncarnation&, flatbuffers::FlatBufferBuilder& fbb,
                         std::vector<ipc::RingSlot>&) -> Status {
    std::vector<flatbuffers::Offset<flatbuffers::String>> stop;
    for (const auto& s : options.stop) stop.push_back(fbb.CreateString(s));
    auto params = wire::CreateSamplingParamsDirect(
        fbb, options.max_tokens, options.temperature, options.top_k, options.top_p, options.min_p,
        options.repetition_penalty, options.presence_penalty, options.frequency_penalty,
        options.seed.value_or(0), options.seed.has_value(), stop.empty() ? nullptr : &stop);
    // The worker's deadline is what is left of the request's (a resumed one has spent some).
    uint32_t deadline_ms = 0;
    if (options.deadline.has_value() && options.deadline->count() > 0) {
      const auto left = *options.deadline - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started);
      deadline_ms = static_cast<uint32_t>(std::clamp<int64_t>(left.count(), 1, UINT32_MAX));
    }
    ipc::finish_envelope(
        fbb, rid, wire::Message::Generate,
        wire::CreateGenerateDirect(fbb, messages_json.empty() ? prompt.c_str() : nullptr, nullptr,
                                   messages_json.empty() ? nullptr : messages_json.c_str(), params,
                                   stream, deadline_ms, *resuming ? &result->token_ids : nullptr)
            .Union());
    return ok_status();
  };
  auto cancelled = std::make_shared<bool>(false);
  std::weak_ptr<PluginSupervisor> weak = supervisor;
  submission.on_message = [n, id, done, result, cancelled, weak, on_chunk = std::move(on_chunk)](
                              ipc::InboundMessage& message, WorkerIncarnation&) -> Result<bool> {
    if (message.type() == wire::Message::Error) {
      done(error_from(message, n));
      return true;
    }
    if (message.type() != wire::Message::TokenChunk) {
      return invalid_argument_error(
          fmt::format("plugin \"{}\": protocol violation: {} answers a generation", n,
                      ipc::message_type_name(message.type())));
    }
    const auto* chunk = message.envelope().message_as_TokenChunk();
    host::TokenChunk piece;
    if (chunk->token_ids())
      piece.token_ids.assign(chunk->token_ids()->begin(), chunk->token_ids()->end());
    // The worker promises whole characters (plugin.h); a plugin that cuts one anyway gets U+FFFD
    // in its text rather than its worker killed: the stream goes on, and what reaches the caller
    // (an SSE chunk, a JSON body) is valid UTF-8 whatever the plugin did.
    piece.text = worker_text(chunk->text());
    if (result->text.size() + piece.text.size() > kMaxGeneratedBytes ||
        result->token_ids.size() + piece.token_ids.size() > kMaxGeneratedBytes / 4) {
      return resource_exhausted_error(fmt::format(
          "plugin \"{}\": the generation passed {} MiB; stopped", n, kMaxGeneratedBytes >> 20));
    }
    result->text += piece.text;
    result->token_ids.insert(result->token_ids.end(), piece.token_ids.begin(),
                             piece.token_ids.end());
    if (on_chunk && !*cancelled && (!piece.text.empty() || !piece.token_ids.empty())) {
      if (!on_chunk(piece)) {
        *cancelled = true;
        if (auto s = weak.lock()) s->cancel(id);
      }
    }
    if (chunk->finish_reason() == wire::FinishReason::None) return false;
    result->finish_reason = from_wire(chunk->finish_reason());
    result->prompt_tokens = chunk->prompt_tokens();
    result->completion_tokens = chunk->completion_tokens();
    done(std::move(*result));
    return true;
  };
  submission.on_fail = [done](const Status& status) { done(status); };
  // A generation the caller cancelled ends with the crash; any other continues from the tokens
  // it already has (none yet when not streaming: the worker sends them at the end).
  submission.resume = [resuming, cancelled] {
    if (*cancelled) return false;
    *resuming = true;
    return true;
  };
  supervisor->submit(id, std::move(submission));
}

Result<host::GenerateResult> Host::generate(std::string_view name, std::string_view prompt,
                                            const host::GenerateOptions& options) {
  return generate_stream(name, prompt, options, {});
}

Result<host::GenerateResult> Host::generate_stream(std::string_view name, std::string_view prompt,
                                                   const host::GenerateOptions& options,
                                                   host::TokenCallback on_chunk) {
  using Out = Result<host::GenerateResult>;
  return impl_->run<Out>([this, n = std::string(name), p = std::string(prompt), options,
                          on_chunk = std::move(on_chunk)](auto done) mutable {
    impl_->submit_generate(n, std::move(p), {}, options, std::move(on_chunk), done);
  });
}

Result<host::GenerateResult> Host::chat(std::string_view name, std::string_view messages_json,
                                        const host::GenerateOptions& options,
                                        host::TokenCallback on_chunk) {
  using Out = Result<host::GenerateResult>;
  if (messages_json.empty()) {
    return invalid_argument_error(
        fmt::format("plugin \"{}\": chat needs a JSON array of messages", name));
  }
  return impl_->run<Out>([this, n = std::string(name), m = std::string(messages_json), options,
                          on_chunk = std::move(on_chunk)](auto done) mutable {
    impl_->submit_generate(n, {}, std::move(m), options, std::move(on_chunk), done);
  });
}

Host& get_plugin_manager() {
  static std::unique_ptr<Host> host = [] {
    host::HostConfig config = host::default_host_config();
    if (const char* path = std::getenv("PIO_PLUGIN_PATH")) {
      std::string_view rest(path);
      while (!rest.empty()) {
        const size_t colon = rest.find(':');
        const std::string_view dir = rest.substr(0, colon);
        if (!dir.empty()) config.plugin_dirs.emplace_back(dir);
        rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
      }
    }
    auto created = Host::create(std::move(config));
    if (!created.ok()) {
      std::fprintf(stderr, "pio: get_plugin_manager(): %s\n", created.status().to_string().c_str());
      std::abort();
    }
    return std::move(*created);
  }();
  return *host;
}

}  // namespace pio
