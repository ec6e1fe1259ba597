#include "qwen3_text_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "pio/runtime/chat_template_qwen3.h"
#include "pio/runtime/model_config.h"

namespace pio::qwen3 {
namespace {

using sdk::Json;

Status bad_key(std::string_view key, std::string_view what) {
  return invalid_argument_error(fmt::format("qwen3 config: \"{}\" {}", key, what));
}

runtime::SamplingParams sampling_of(const sdk::SamplingParams& p) {
  runtime::SamplingParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repetition_penalty = p.repetition_penalty;
  s.presence_penalty = p.presence_penalty;
  s.frequency_penalty = p.frequency_penalty;
  s.seed = p.seed;
  return s;
}

sdk::FinishReason finish_of(runtime::FinishReason reason) {
  switch (reason) {
    case runtime::FinishReason::kEos:
    case runtime::FinishReason::kStopString:
      return sdk::FinishReason::kStop;
    case runtime::FinishReason::kMaxTokens:
      return sdk::FinishReason::kLength;
    case runtime::FinishReason::kCancelled:
      return sdk::FinishReason::kCancelled;
  }
  return sdk::FinishReason::kStop;
}

// The render-chat and chat inputs are ordered JSON already (pio::sdk::Json keeps key order); the
// template takes nlohmann::ordered_json, which is the same type.
static_assert(std::is_same_v<sdk::Json, nlohmann::ordered_json>);

Result<bool> optional_bool(const Json& object, std::string_view key, bool fallback) {
  if (!object.is_object() || !object.contains(key) || object[std::string(key)].is_null()) {
    return fallback;
  }
  const Json& value = object[std::string(key)];
  if (!value.is_boolean()) {
    return invalid_argument_error(fmt::format("\"{}\" must be true or false", key));
  }
  return value.get<bool>();
}

}  // namespace

Status apply_qwen3_settings(const Json& config, Qwen3PluginSettings* settings) {
  if (config.is_null()) return ok_status();
  if (!config.is_object()) {
    return invalid_argument_error("qwen3 config: expected a JSON object");
  }
  Qwen3PluginSettings next = *settings;
  for (const auto& [key, value] : config.items()) {
    if (key == "threads") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 256) {
        return bad_key(key, "must be an integer from 1 to 256");
      }
      next.threads = value.get<int>();
    } else if (key == "max_context") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0) {
        return bad_key(key, "must be a non-negative integer (0: the model's own limit)");
      }
      next.max_context = value.get<int64_t>();
    } else if (key == "enable_thinking") {
      if (!value.is_boolean()) return bad_key(key, "must be true or false");
      next.enable_thinking = value.get<bool>();
    } else if (key == "chat_template") {
      if (value == "qwen3") {
        next.hybrid_thinking = true;
      } else if (value == "qwen3_instruct_2507") {
        next.hybrid_thinking = false;
      } else {
        return bad_key(key, "must be \"qwen3\" or \"qwen3_instruct_2507\"");
      }
    } else if (key == "load_weights") {
      if (!value.is_boolean()) return bad_key(key, "must be true or false");
      next.load_weights = value.get<bool>();
    } else {
      return bad_key(key,
                     "is not a setting of this plugin (it has threads, max_context, "
                     "enable_thinking, chat_template, load_weights)");
    }
  }
  *settings = next;
  return ok_status();
}

Status Qwen3TextModel::initialize(const Json& config) {
  return apply_qwen3_settings(config, &settings_);
}

Result<bool> Qwen3TextModel::supports_config(const Json& config) {
  Qwen3PluginSettings scratch = settings_;
  return apply_qwen3_settings(config, &scratch).ok();
}

Status Qwen3TextModel::update_config(const Json& config) {
  Qwen3PluginSettings next = settings_;
  PIO_RETURN_IF_ERROR(apply_qwen3_settings(config, &next));
  if (model_ != nullptr &&
      (next.threads != settings_.threads || next.load_weights != settings_.load_weights)) {
    return failed_precondition_error(
        "qwen3 config: threads and load_weights apply when the model loads; reactivate the "
        "plugin to change them");
  }
  settings_ = next;
  return ok_status();
}

Status Qwen3TextModel::load_model(const sdk::ModelSource& source, const Json& config) {
  PIO_RETURN_IF_ERROR(apply_qwen3_settings(config, &settings_));
  if (source.empty()) {
    return invalid_argument_error(fmt::format(
        "{}: load_model needs a model directory (a Hugging Face checkpoint: config.json, "
        "*.safetensors, tokenizer.json)",
        plugin_name()));
  }
  // The host resolved this path inside the plugin's model roots, and landlock lets the worker
  // read nothing else, so the runtime opens the checkpoint's files beneath it by name.
  const std::filesystem::path dir(source.path());
  auto tokenizer = runtime::Tokenizer::from_file(dir / "tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status().with_context(std::string(plugin_name()));
  auto generation = runtime::load_generation_config(dir);
  if (!generation.ok()) return generation.status().with_context(std::string(plugin_name()));

  std::unique_ptr<runtime::Qwen3Model> model;
  if (settings_.load_weights) {
    runtime::ModelOptions options;
    options.threads = settings_.threads;
    auto loaded = runtime::Qwen3Model::load(dir, options);
    if (!loaded.ok()) return loaded.status().with_context(std::string(plugin_name()));
    model = std::move(*loaded);
    if (tokenizer->id_limit() > model->vocab_size()) {
      return invalid_argument_error(fmt::format(
          "{}: tokenizer.json has ids up to {} but the model's vocabulary is {}; they are not "
          "from the same checkpoint",
          plugin_name(), tokenizer->id_limit() - 1, model->vocab_size()));
    }
  }
  generator_.reset();
  model_ = std::move(model);
  tokenizer_ = std::move(*tokenizer);
  generation_ = std::move(*generation);
  model_dir_ = dir;
  if (model_ != nullptr) generator_ = std::make_unique<runtime::Generator>(*model_, *tokenizer_);
  return ok_status();
}

Status Qwen3TextModel::cleanup() {
  generator_.reset();
  model_.reset();
  tokenizer_.reset();
  model_dir_.clear();
  return ok_status();
}

Status Qwen3TextModel::need_tokenizer() const {
  if (tokenizer_.has_value()) return ok_status();
  return failed_precondition_error(
      fmt::format("{}: no model is loaded (activate the plugin with a model path)", plugin_name()));
}

Status Qwen3TextModel::need_model() const {
  PIO_RETURN_IF_ERROR(need_tokenizer());
  if (model_ != nullptr) return ok_status();
  return failed_precondition_error(fmt::format(
      "{}: the weights were not loaded (load_weights is false); only tokenize, detokenize and "
      "render_chat work",
      plugin_name()));
}

Result<Json> Qwen3TextModel::get_model_info() {
  Json info = {{"name", std::string(plugin_name())}, {"model_family", "qwen3"}};
  info["loaded"] = tokenizer_.has_value();
  if (!tokenizer_.has_value()) return info;
  info["model_path"] = model_dir_.string();
  info["weights_loaded"] = model_ != nullptr;
  info["tokenizer_ids"] = tokenizer_->id_limit();
  info["eos_token_ids"] = generation_.eos_token_ids;
  if (model_ != nullptr) {
    const runtime::Qwen3Config& c = model_->config();
    info["config"] = {{"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads},
                      {"head_dim", c.head_dim},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"dtype", std::string(runtime::config_dtype_name(model_->dtype()))}};
    info["weight_bytes_per_token"] = model_->weight_bytes_per_token();
  }
  info["settings"] = {
      {"threads", settings_.threads},
      {"max_context", settings_.max_context},
      {"enable_thinking", settings_.enable_thinking},
      {"chat_template", settings_.hybrid_thinking ? "qwen3" : "qwen3_instruct_2507"}};
  return info;
}

Status Qwen3TextModel::infer(std::span<const sdk::TensorView> inputs, sdk::CallContext& call) {
  PIO_RETURN_IF_ERROR(need_model());
  if (inputs.size() != 1 || inputs[0].name() != "input_ids" ||
      inputs[0].dtype() != sdk::DType::kI32 || inputs[0].shape().size() != 1 ||
      inputs[0].shape()[0] < 1) {
    return invalid_argument_error(fmt::format(
        "{}: infer takes one I32 tensor \"input_ids\" of shape [n], n >= 1 (it returns F32 "
        "\"logits\" [n, vocab]); use generate or chat for text",
        plugin_name()));
  }
  const auto ids = inputs[0].as<int32_t>();
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t vocab = model_->vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return invalid_argument_error(fmt::format(
          "{}: input_ids holds {}, outside the vocabulary [0, {})", plugin_name(), id, vocab));
    }
  }
  PIO_ASSIGN_OR_RETURN(runtime::KvCache cache, model_->new_cache(n));
  PIO_ASSIGN_OR_RETURN(std::vector<float> logits,
                       model_->forward(ids, 0, cache, /*all_logits=*/true));
  const int64_t shape[] = {n, vocab};
  PIO_ASSIGN_OR_RETURN(auto out, call.allocate_output("logits", sdk::DType::kF32, shape));
  std::memcpy(out.data(), logits.data(), out.size());
  return ok_status();
}

Result<std::string> Qwen3TextModel::render_chat(const Json& messages, const Json& tools,
                                                bool add_generation_prompt,
                                                bool enable_thinking) const {
  runtime::Qwen3ChatOptions options;
  options.add_generation_prompt = add_generation_prompt;
  // The instruct template has no thinking switch; it renders what the hybrid one renders with
  // thinking on (no think block of its own).
  options.enable_thinking = enable_thinking || !settings_.hybrid_thinking;
  return runtime::render_qwen3_chat(messages, tools, options);
}

Result<Json> Qwen3TextModel::execute(std::string_view command, const Json& params,
                                     std::span<const sdk::TensorView> inputs,
                                     sdk::CallContext& call) {
  if (command == "tokenize") {
    if (!params.contains("text") || !params["text"].is_string()) {
      return invalid_argument_error("tokenize: params must be {\"text\": \"...\"}");
    }
    PIO_ASSIGN_OR_RETURN(auto ids, tokenize(params["text"].get<std::string>()));
    return Json{{"ids", ids}};
  }
  if (command == "detokenize") {
    if (!params.contains("ids") || !params["ids"].is_array()) {
      return invalid_argument_error("detokenize: params must be {\"ids\": [...]}");
    }
    std::vector<int32_t> ids;
    for (const auto& id : params["ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return invalid_argument_error("detokenize: every id must be a non-negative integer");
      }
      ids.push_back(id.get<int32_t>());
    }
    PIO_RETURN_IF_ERROR(need_tokenizer());
    PIO_ASSIGN_OR_RETURN(bool skip, optional_bool(params, "skip_special_tokens", false));
    return Json{{"text", tokenizer_->decode(ids, skip)}};
  }
  if (command == "render_chat") {
    PIO_RETURN_IF_ERROR(need_tokenizer());
    if (!params.contains("messages") || !params["messages"].is_array()) {
      return invalid_argument_error("render_chat: params need a \"messages\" array");
    }
    const Json tools = params.contains("tools") ? params["tools"] : Json();
    PIO_ASSIGN_OR_RETURN(bool generation_prompt,
                         optional_bool(params, "add_generation_prompt", false));
    PIO_ASSIGN_OR_RETURN(bool thinking,
                         optional_bool(params, "enable_thinking", settings_.enable_thinking));
    auto rendered = render_chat(params["messages"], tools, generation_prompt, thinking);
    if (!rendered.ok()) return rendered.status().with_context("render_chat");
    return Json{{"rendered", *rendered}};
  }
  return TextModelPlugin::execute(command, params, inputs, call);
}

Result<std::vector<int32_t>> Qwen3TextModel::tokenize(std::string_view text) {
  PIO_RETURN_IF_ERROR(need_tokenizer());
  return tokenizer_->encode(text);
}

Result<std::string> Qwen3TextModel::detokenize(std::span<const int32_t> token_ids) {
  PIO_RETURN_IF_ERROR(need_tokenizer());
  return tokenizer_->decode(token_ids, /*skip_special_tokens=*/false);
}

Result<sdk::GenerateResult> Qwen3TextModel::run(std::vector<int32_t> prompt,
                                                const sdk::GenerateRequest& generate,
                                                sdk::TokenStream& out) {
  const sdk::SamplingParams& params = generate.params;
  const int64_t vocab = model_->vocab_size();
  for (int32_t id : prompt) {
    if (id < 0 || id >= vocab) {
      return invalid_argument_error(
          fmt::format("{}: the prompt holds token id {}, outside the vocabulary [0, {})",
                      plugin_name(), id, vocab));
    }
  }
  const int64_t model_limit = model_->config().max_position_embeddings;
  const int64_t limit =
      settings_.max_context > 0 ? std::min(settings_.max_context, model_limit) : model_limit;
  const auto prompt_tokens = static_cast<int64_t>(prompt.size());
  if (prompt_tokens >= limit) {
    return invalid_argument_error(fmt::format(
        "{}: the prompt has {} tokens; this plugin's context holds {} (max_context), so no "
        "token is left to generate",
        plugin_name(), prompt_tokens, limit));
  }
  if (params.max_tokens == 0) {
    return invalid_argument_error(fmt::format("{}: max_tokens must be at least 1", plugin_name()));
  }
  runtime::GenerationRequest request;
  request.prompt = std::move(prompt);
  request.sampling = sampling_of(params);
  request.max_new_tokens = std::min<int64_t>(params.max_tokens, limit - prompt_tokens);
  request.stop_strings = params.stop;
  if (generate.resume_token_ids.has_value()) {
    request.resume.assign(generate.resume_token_ids->begin(), generate.resume_token_ids->end());
  }
  if (!params.ignore_eos) {
    for (int64_t id : generation_.eos_token_ids)
      request.eos_ids.push_back(static_cast<int32_t>(id));
    for (int64_t id : model_->config().eos_token_ids) {
      request.eos_ids.push_back(static_cast<int32_t>(id));
    }
  }
  request.eos_ids.insert(request.eos_ids.end(), params.stop_token_ids.begin(),
                         params.stop_token_ids.end());

  std::atomic<bool> cancel{false};
  auto on_token = [&](const runtime::StreamedToken& token) {
    if (cancel.load(std::memory_order_relaxed)) return;
    if (out.cancelled() || !out.emit(std::span(&token.id, 1), token.text)) {
      cancel.store(true, std::memory_order_relaxed);
    }
  };
  auto generated = generator_->generate(request, on_token, &cancel);
  if (!generated.ok()) return generated.status().with_context(std::string(plugin_name()));
  sdk::GenerateResult result;
  result.finish_reason = finish_of(generated->finish_reason);
  result.prompt_tokens = static_cast<uint32_t>(prompt_tokens);
  result.completion_tokens = static_cast<uint32_t>(generated->ids.size());
  return result;
}

Result<sdk::GenerateResult> Qwen3TextModel::generate_text(const sdk::GenerateRequest& request,
                                                          sdk::TokenStream& out) {
  PIO_RETURN_IF_ERROR(need_model());
  std::vector<int32_t> prompt;
  if (request.prompt_token_ids.has_value()) {
    prompt.assign(request.prompt_token_ids->begin(), request.prompt_token_ids->end());
  } else {
    PIO_ASSIGN_OR_RETURN(prompt, tokenizer_->encode(request.prompt));
  }
  if (prompt.empty()) {
    return invalid_argument_error(fmt::format("{}: the prompt is empty", plugin_name()));
  }
  return run(std::move(prompt), request, out);
}

Result<sdk::GenerateResult> Qwen3TextModel::chat_completion(const sdk::GenerateRequest& request,
                                                            sdk::TokenStream& out) {
  PIO_RETURN_IF_ERROR(need_model());
  PIO_ASSIGN_OR_RETURN(bool thinking, optional_bool(request.chat_template_kwargs, "enable_thinking",
                                                    settings_.enable_thinking));
  auto rendered =
      render_chat(request.messages, request.tools, /*add_generation_prompt=*/true, thinking);
  if (!rendered.ok()) return rendered.status().with_context("chat_completion");
  PIO_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, tokenizer_->encode(*rendered));
  return run(std::move(prompt), request, out);
}

}  // namespace pio::qwen3
