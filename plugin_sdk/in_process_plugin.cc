#include "pio/plugin_sdk/in_process_plugin.h"

#include <fcntl.h>

#include <atomic>
#include <cerrno>

#include "fmt/format.h"
#include "internal/output_ring.h"
#include "internal/worker_services.h"
#include "pio/ipc/unique_fd.h"

namespace pio::sdk {

namespace {

struct GenerateState {
  const InProcessPlugin::TokenCallback* callback;
};

int forward_tokens(void* user, const int32_t* ids, size_t n, const char* text, size_t text_len) {
  auto* state = static_cast<GenerateState*>(user);
  try {
    return (*state->callback)(std::span<const int32_t>(ids, n),
                              std::string_view(text == nullptr ? "" : text, text_len))
               ? 0
               : 1;
  } catch (...) {
    return 1;
  }
}

}  // namespace

InProcessPlugin::InProcessPlugin(PluginLibrary library, size_t output_bytes)
    : library_(std::move(library)), memory_(output_bytes + ipc::ShmRing::kDefaultAlignment) {
  const auto address = reinterpret_cast<uintptr_t>(memory_.data());
  const uintptr_t aligned = (address + ipc::ShmRing::kDefaultAlignment - 1) &
                            ~uintptr_t{ipc::ShmRing::kDefaultAlignment - 1};
  base_ = memory_.data() + (aligned - address);
  auto ring = ipc::ShmRing::create(0, output_bytes);
  PIO_CHECK(ring.ok());
  ring_ = std::make_unique<worker::OutputRing>(std::move(*ring));
}

Result<std::unique_ptr<InProcessPlugin>> InProcessPlugin::load(const std::filesystem::path& library,
                                                               std::string_view config_json,
                                                               size_t output_bytes) {
  if (output_bytes == 0) return invalid_argument_error("InProcessPlugin: output_bytes is 0");
  PIO_ASSIGN_OR_RETURN(PluginLibrary lib, PluginLibrary::open(library));
  std::unique_ptr<InProcessPlugin> p(new InProcessPlugin(std::move(lib), output_bytes));
  pio_plugin* instance = nullptr;
  PIO_RETURN_IF_ERROR(worker::take_error(p->api().create(worker::host_services(), &instance))
                          .with_context(fmt::format("plugin {}: create", p->api().name)));
  if (instance == nullptr) return internal_error("create succeeded without an instance");
  p->plugin_ = instance;
  PIO_RETURN_IF_ERROR(
      worker::take_error(p->api().initialize(instance, config_json.data(), config_json.size())));
  return p;
}

InProcessPlugin::~InProcessPlugin() {
  if (plugin_ != nullptr) {
    worker::take_error(api().cleanup(plugin_)).ignore();
    api().destroy(plugin_);
  }
}

void InProcessPlugin::release_outputs() {
  for (const auto& slot : live_) ring_->release(slot).ignore();
  live_.clear();
}

Result<InProcessPlugin::Answer> InProcessPlugin::infer(std::string_view command,
                                                       std::string_view params_json,
                                                       std::span<const pio_tensor_view> inputs) {
  release_outputs();
  const std::atomic<bool> not_cancelled{false};
  worker::CallState call;
  call.ring = ring_.get();
  call.arena_base = base_;
  call.cancelled = &not_cancelled;
  Status status;
  if (command.empty() || command == "infer") {
    status = worker::take_error(
        api().infer(plugin_, worker::as_call(&call), inputs.data(), inputs.size()));
  } else if (api().execute == nullptr) {
    status =
        unimplemented_error(fmt::format("execute: plugin {} does not implement it", api().name));
  } else {
    const std::string name(command);
    status = worker::take_error(api().execute(plugin_, worker::as_call(&call), name.c_str(),
                                              params_json.data(), params_json.size(), inputs.data(),
                                              inputs.size()));
  }
  if (!status.ok()) {
    call.drop_outputs();
    return status;
  }
  Answer answer;
  answer.json = std::move(call.json);
  for (auto& out : call.outputs) {
    live_.push_back(out.slot);
    answer.outputs.push_back(Output{std::move(out.name),
                                    out.dtype,
                                    std::move(out.shape),
                                    {base_ + out.slot.offset, out.slot.length}});
  }
  return answer;
}

Status InProcessPlugin::load_model(const std::filesystem::path& path,
                                   std::string_view config_json) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_status(fmt::format("load_model: {}", path.string()), errno);
  const std::string absolute = std::filesystem::absolute(path).string();
  pio_model_source source{sizeof(pio_model_source), absolute.c_str(), fd.get()};
  return worker::take_error(
      api().load_model(plugin_, &source, config_json.data(), config_json.size()));
}

Result<pio_generate_result> InProcessPlugin::generate(std::string_view prompt,
                                                      const Sampling& sampling,
                                                      const TokenCallback& on_tokens) {
  if (api().generate_text == nullptr) {
    return unimplemented_error(
        fmt::format("generate_text: plugin {} is not a text model", api().name));
  }
  return run_generation(false, prompt, sampling, on_tokens);
}

Result<pio_generate_result> InProcessPlugin::chat(std::string_view messages_json,
                                                  const Sampling& sampling,
                                                  const TokenCallback& on_tokens) {
  if (api().chat_completion == nullptr) {
    return unimplemented_error(
        fmt::format("chat_completion: plugin {} is not a text model", api().name));
  }
  return run_generation(true, messages_json, sampling, on_tokens);
}

Result<pio_generate_result> InProcessPlugin::run_generation(bool chat, std::string_view text,
                                                            const Sampling& sampling,
                                                            const TokenCallback& on_tokens) {
  const std::atomic<bool> not_cancelled{false};
  worker::CallState call;
  call.ring = ring_.get();
  call.arena_base = base_;
  call.cancelled = &not_cancelled;
  pio_sampling_params params{};
  params.struct_size = sizeof(params);
  params.max_tokens = sampling.max_tokens;
  params.temperature = sampling.temperature;
  params.top_k = sampling.top_k;
  params.top_p = sampling.top_p;
  params.repetition_penalty = 1.0f;
  params.seed = sampling.seed.value_or(0);
  params.has_seed = sampling.seed.has_value() ? 1 : 0;
  pio_generate_request request{};
  request.struct_size = sizeof(request);
  const char* data = text.data() == nullptr ? "" : text.data();
  request.prompt = chat ? "" : data;
  request.prompt_len = chat ? 0 : text.size();
  request.messages_json = chat ? data : "";
  request.messages_json_len = chat ? text.size() : 0;
  request.params = &params;
  GenerateState state{&on_tokens};
  pio_generate_result result{sizeof(pio_generate_result), PIO_FINISH_NONE, 0, 0};
  auto* verb = chat ? api().chat_completion : api().generate_text;
  PIO_RETURN_IF_ERROR(worker::take_error(
      verb(plugin_, worker::as_call(&call), &request, &forward_tokens, &state, &result)));
  return result;
}

}  // namespace pio::sdk
