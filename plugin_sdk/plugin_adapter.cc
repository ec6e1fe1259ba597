// The plugin side of the C ABI: the functions PIO_PLUGIN puts into a plugin's pio_plugin_api.
// This code is linked into every plugin library (not into the worker). Every function here is a
// C boundary: each catches everything, and builds its last-resort message without allocating.

#include <cstddef>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "fmt/format.h"
#include "pio/plugin.hpp"
#include "pio/plugin_sdk/path_guard.h"

// The instance behind the opaque handle. Each plugin library has its own copy of this definition
// (symbols are local to the library), the worker only ever sees the pointer.
struct pio_plugin {
  const pio_host_services* host = nullptr;
  std::unique_ptr<pio::sdk::ModelPlugin> impl;
};

namespace pio::sdk {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF64:
    case DType::kI64:
      return 8;
  }
  return 0;
}

namespace {

pio_error_code to_c_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
    case ErrorCode::kInternal:
    case ErrorCode::kWorkerCrashed:
      return PIO_ERROR_INTERNAL;
    case ErrorCode::kInvalidArgument:
      return PIO_ERROR_INVALID_ARGUMENT;
    case ErrorCode::kNotFound:
      return PIO_ERROR_NOT_FOUND;
    case ErrorCode::kPermissionDenied:
      return PIO_ERROR_PERMISSION_DENIED;
    case ErrorCode::kResourceExhausted:
      return PIO_ERROR_RESOURCE_EXHAUSTED;
    case ErrorCode::kFailedPrecondition:
      return PIO_ERROR_FAILED_PRECONDITION;
    case ErrorCode::kUnavailable:
      return PIO_ERROR_UNAVAILABLE;
    case ErrorCode::kDeadlineExceeded:
      return PIO_ERROR_DEADLINE_EXCEEDED;
    case ErrorCode::kCancelled:
      return PIO_ERROR_CANCELLED;
    case ErrorCode::kUnimplemented:
      return PIO_ERROR_UNIMPLEMENTED;
  }
  return PIO_ERROR_INTERNAL;
}

ErrorCode from_c_code(pio_error_code code) {
  if (code >= PIO_ERROR_INVALID_ARGUMENT && code <= PIO_ERROR_UNIMPLEMENTED) {
    return static_cast<ErrorCode>(code);
  }
  return ErrorCode::kInternal;
}

// Takes over an error a worker service returned: its code and message as a Status, the handle
// freed.
Status status_from(const pio_host_services* host, pio_error* error) {
  if (error == nullptr) return ok_status();
  Status status(from_c_code(host->error_code(error)), host->error_message(error));
  host->error_delete(error);
  return status;
}

pio_error* to_error(const pio_host_services* host, const Status& status) {
  if (status.ok()) return nullptr;
  return host->error_new(to_c_code(status.code()), status.message().c_str());
}

// Runs `body` (returning Status) and turns its outcome into what the C ABI returns. An exception
// becomes PIO_ERROR_INTERNAL with its what(); the message is built in a fixed buffer because the
// exception may be bad_alloc.
template <typename Body>
pio_error* guarded(const pio_host_services* host, const char* verb, Body&& body) noexcept {
  try {
    return to_error(host, body());
  } catch (const std::exception& e) {
    char message[1024];
    (void)std::snprintf(message, sizeof(message), "%s: uncaught exception in the plugin: %s", verb,
                        e.what());
    return host->error_new(PIO_ERROR_INTERNAL, message);
  } catch (...) {
    char message[256];
    (void)std::snprintf(message, sizeof(message),
                        "%s: uncaught exception in the plugin (not a std::exception)", verb);
    return host->error_new(PIO_ERROR_INTERNAL, message);
  }
}

Result<Json> parse_json(std::string_view what, const char* text, size_t length) {
  if (length == 0) return Json::object();
  Json parsed = Json::parse(text, text + length, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return invalid_argument_error(fmt::format("{}: not valid JSON", what));
  }
  return parsed;
}

std::vector<TensorView> views_of(const pio_tensor_view* inputs, size_t n) {
  std::vector<TensorView> views;
  views.reserve(n);
  for (size_t i = 0; i < n; ++i) views.emplace_back(inputs[i]);
  return views;
}

Status output_json(const CallContext& call, const Json& json) {
  if (json.is_null()) return ok_status();
  const std::string text = json.dump(-1, ' ', false, Json::error_handler_t::replace);
  return status_from(call.host(), call.host()->output_json(call.call(), text.data(), text.size()));
}

TextModelPlugin* text_model(pio_plugin* plugin) {
  return dynamic_cast<TextModelPlugin*>(plugin->impl.get());
}

SamplingParams sampling_from(const pio_sampling_params* c) {
  SamplingParams p;
  if (c == nullptr) return p;
  p.max_tokens = c->max_tokens;
  p.temperature = c->temperature;
  p.top_k = c->top_k;
  p.top_p = c->top_p;
  p.min_p = c->min_p;
  p.repetition_penalty = c->repetition_penalty;
  p.presence_penalty = c->presence_penalty;
  p.frequency_penalty = c->frequency_penalty;
  if (c->has_seed) p.seed = c->seed;
  for (size_t i = 0; i < c->n_stop; ++i) p.stop.emplace_back(c->stop[i]);
  p.stop_token_ids.assign(c->stop_token_ids, c->stop_token_ids + c->n_stop_token_ids);
  p.ignore_eos = c->ignore_eos != 0;
  return p;
}

void fill_result(const GenerateResult& r, pio_generate_result* out) {
  out->finish_reason = static_cast<pio_finish_reason>(r.finish_reason);
  out->prompt_tokens = r.prompt_tokens;
  out->completion_tokens = r.completion_tokens;
}

// --- the table's functions ---

// Destructors are noexcept: one that throws terminates the worker, which the host reports as a
// crash of this plugin like any other.
void destroy(pio_plugin* plugin) { delete plugin; }

pio_error* initialize(pio_plugin* plugin, const char* config_json, size_t config_len) {
  return guarded(plugin->host, "initialize", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json config,
                         parse_json("initialize: the configuration", config_json, config_len));
    return plugin->impl->initialize(config);
  });
}

pio_error* load_model(pio_plugin* plugin, const pio_model_source* source, const char* config_json,
                      size_t config_len) {
  return guarded(plugin->host, "load_model", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json config,
                         parse_json("load_model: the configuration", config_json, config_len));
    return plugin->impl->load_model(ModelSource(*source), config);
  });
}

pio_error* infer(pio_plugin* plugin, pio_call* call, const pio_tensor_view* inputs, size_t n) {
  return guarded(plugin->host, "infer", [&]() -> Status {
    CallContext context(plugin->host, call);
    const std::vector<TensorView> views = views_of(inputs, n);
    return plugin->impl->infer(views, context);
  });
}

pio_error* cleanup(pio_plugin* plugin) {
  return guarded(plugin->host, "cleanup", [&]() -> Status { return plugin->impl->cleanup(); });
}

pio_error* supports_config(pio_plugin* plugin, const char* config_json, size_t config_len,
                           int* supported) {
  return guarded(plugin->host, "supports_config", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json config,
                         parse_json("supports_config: the configuration", config_json, config_len));
    PIO_ASSIGN_OR_RETURN(bool yes, plugin->impl->supports_config(config));
    *supported = yes ? 1 : 0;
    return ok_status();
  });
}

pio_error* install(pio_plugin* plugin) {
  return guarded(plugin->host, "install", [&]() -> Status { return plugin->impl->install(); });
}

pio_error* get_model_info(pio_plugin* plugin, pio_call* call) {
  return guarded(plugin->host, "get_model_info", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json info, plugin->impl->get_model_info());
    return output_json(CallContext(plugin->host, call), info);
  });
}

pio_error* update_config(pio_plugin* plugin, const char* config_json, size_t config_len) {
  return guarded(plugin->host, "update_config", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json config,
                         parse_json("update_config: the configuration", config_json, config_len));
    return plugin->impl->update_config(config);
  });
}

pio_error* execute(pio_plugin* plugin, pio_call* call, const char* command, const char* params_json,
                   size_t params_len, const pio_tensor_view* inputs, size_t n) {
  return guarded(plugin->host, "execute", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(Json params,
                         parse_json("execute: the parameters", params_json, params_len));
    CallContext context(plugin->host, call);
    const std::vector<TensorView> views = views_of(inputs, n);
    PIO_ASSIGN_OR_RETURN(Json answer, plugin->impl->execute(command, params, views, context));
    return output_json(context, answer);
  });
}

pio_error* tokenize(pio_plugin* plugin, pio_call* call, const char* text, size_t text_len) {
  return guarded(plugin->host, "tokenize", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(auto ids, text_model(plugin)->tokenize(std::string_view(text, text_len)));
    return status_from(plugin->host, plugin->host->output_tokens(call, ids.data(), ids.size()));
  });
}

pio_error* detokenize(pio_plugin* plugin, pio_call* call, const int32_t* ids, size_t n) {
  return guarded(plugin->host, "detokenize", [&]() -> Status {
    PIO_ASSIGN_OR_RETURN(std::string text, text_model(plugin)->detokenize(std::span(ids, n)));
    return status_from(plugin->host, plugin->host->output_text(call, text.data(), text.size()));
  });
}

// A chat arrives as a JSON array of messages, or as an object {"messages": [...], "tools": [...],
// "chat_template_kwargs": {...}} when it carries more than the messages.
Status split_chat_request(Json chat, GenerateRequest* r) {
  if (chat.is_array()) {
    r->messages = std::move(chat);
    return ok_status();
  }
  if (!chat.is_object() || !chat.contains("messages") || !chat["messages"].is_array()) {
    return invalid_argument_error(
        "chat_completion: the messages are neither a JSON array nor an object with a "
        "\"messages\" array");
  }
  for (const auto& [key, value] : chat.items()) {
    if (key != "messages" && key != "tools" && key != "chat_template_kwargs") {
      return invalid_argument_error(fmt::format(
          "chat_completion: unknown field \"{}\" (expected messages, tools, chat_template_kwargs)",
          key));
    }
  }
  r->messages = std::move(chat["messages"]);
  if (chat.contains("tools") && !chat["tools"].is_null()) {
    if (!chat["tools"].is_array()) {
      return invalid_argument_error("chat_completion: \"tools\" must be an array");
    }
    r->tools = std::move(chat["tools"]);
  }
  if (chat.contains("chat_template_kwargs") && !chat["chat_template_kwargs"].is_null()) {
    if (!chat["chat_template_kwargs"].is_object()) {
      return invalid_argument_error("chat_completion: \"chat_template_kwargs\" must be an object");
    }
    r->chat_template_kwargs = std::move(chat["chat_template_kwargs"]);
  }
  return ok_status();
}

template <bool kChat>
pio_error* generate(pio_plugin* plugin, pio_call* call, const pio_generate_request* request,
                    pio_token_callback on_tokens, void* user, pio_generate_result* result) {
  return guarded(plugin->host, kChat ? "chat_completion" : "generate_text", [&]() -> Status {
    GenerateRequest r;
    r.prompt =
        std::string_view(request->prompt == nullptr ? "" : request->prompt, request->prompt_len);
    if (request->prompt_token_ids != nullptr) {
      r.prompt_token_ids = std::span(request->prompt_token_ids, request->n_prompt_token_ids);
    }
    if constexpr (kChat) {
      PIO_ASSIGN_OR_RETURN(Json chat,
                           parse_json("chat_completion: the messages", request->messages_json,
                                      request->messages_json_len));
      PIO_RETURN_IF_ERROR(split_chat_request(std::move(chat), &r));
    }
    r.params = sampling_from(request->params);
    if (request->struct_size >= offsetof(pio_generate_request, n_resume_token_ids) +
                                    sizeof(request->n_resume_token_ids) &&
        request->resume_token_ids != nullptr) {
      r.resume_token_ids = std::span(request->resume_token_ids, request->n_resume_token_ids);
    }
    CallContext context(plugin->host, call);
    TokenStream stream(context, on_tokens, user);
    TextModelPlugin* text = text_model(plugin);
    PIO_ASSIGN_OR_RETURN(GenerateResult done,
                         kChat ? text->chat_completion(r, stream) : text->generate_text(r, stream));
    fill_result(done, result);
    return ok_status();
  });
}

}  // namespace

Result<std::span<std::byte>> CallContext::allocate_output(std::string_view name, DType dtype,
                                                          std::span<const int64_t> shape) {
  const std::string name_copy(name);
  void* data = nullptr;
  pio_error* error = host_->output_alloc(call_, name_copy.c_str(), static_cast<pio_dtype>(dtype),
                                         shape.data(), static_cast<uint32_t>(shape.size()), &data);
  if (error != nullptr) return status_from(host_, error);
  size_t bytes = dtype_size(dtype);
  for (int64_t d : shape) bytes *= static_cast<size_t>(d);
  return std::span<std::byte>(static_cast<std::byte*>(data), bytes);
}

bool CallContext::cancelled() const { return host_->is_cancelled(call_) != 0; }

Result<UniqueFd> ModelSource::open(std::string_view relative, int flags) const {
  if (empty()) return failed_precondition_error("load_model: no model path was given");
  return open_beneath(source_->fd, relative, flags);
}

Result<Json> ModelPlugin::execute(std::string_view command, const Json& params,
                                  std::span<const TensorView> inputs, CallContext& call) {
  static_cast<void>(params);
  static_cast<void>(inputs);
  static_cast<void>(call);
  return not_found_error(fmt::format("execute: this plugin has no command \"{}\"", command));
}

namespace internal {

pio_plugin_api make_plugin_api(const char* name, const char* version, bool text) {
  pio_plugin_api api{};
  api.struct_size = sizeof(pio_plugin_api);
  api.abi_version = PIO_PLUGIN_ABI_VERSION;
  api.name = name;
  api.version = version;
  api.destroy = &destroy;
  api.initialize = &initialize;
  api.load_model = &load_model;
  api.infer = &infer;
  api.cleanup = &cleanup;
  api.supports_config = &supports_config;
  api.install = &install;
  api.get_model_info = &get_model_info;
  api.update_config = &update_config;
  api.execute = &execute;
  if (text) {
    api.tokenize = &tokenize;
    api.detokenize = &detokenize;
    api.generate_text = &generate<false>;
    api.chat_completion = &generate<true>;
  }
  return api;
}

pio_error* create_plugin(const pio_host_services* host, pio_plugin** out,
                         PluginFactory factory) noexcept {
  return guarded(host, "create", [&]() -> Status {
    auto instance = std::make_unique<pio_plugin>();
    instance->host = host;
    instance->impl = factory();
    *out = instance.release();
    return ok_status();
  });
}

}  // namespace internal
}  // namespace pio::sdk
