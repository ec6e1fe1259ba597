#pragma once
// Qwen3TextModel: the Qwen3 dense text model (qwen3_0_6b, qwen3_4b_instruct_2507) as a plugin. It
// loads a Hugging Face checkpoint directory unchanged (config.json, *.safetensors,
// generation_config.json, tokenizer.json) and serves the text verbs on the model runtime.
//
// Each plugin library derives a final class from this one that only gives the plugin's name (the
// name its Hello carries must be its manifest's), so both manifests share every line of code.
//
// Configuration (manifest default_config, host config, activate options; unknown keys refused):
//   threads          libtorch and GEMV threads (default 2)
//   max_context      longest sequence a request may reach, prompt included (default: the
//                    model's max_position_embeddings)
//   enable_thinking  the chat template's default when a request does not say (default true)
//   chat_template    "qwen3" (hybrid thinking: enable_thinking false adds an empty think block)
//                    or "qwen3_instruct_2507" (no thinking switch: the generation prompt is
//                    always "<|im_start|>assistant\n", whatever enable_thinking says)
//   load_weights     false loads the tokenizer and chat template only (tokenize, render_chat)
//
// execute commands (params are JSON objects):
//   "tokenize"     {"text"}                     -> {"ids": [...]}
//   "detokenize"   {"ids", "skip_special_tokens"?} -> {"text"}
//   "render_chat"  {"messages", "tools"?, "add_generation_prompt"?, "enable_thinking"?}
//                                               -> {"rendered": the prompt text}
// infer: one I32 tensor "input_ids" [n] -> F32 "logits" [n, vocab] (a fresh sequence).
//
// What a caller gets wrong: the worker runs one verb at a time, and so does the model; a
// generation is cancelled between tokens (prefill of a long prompt runs to its end first).

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "pio/plugin.hpp"
#include "pio/runtime/generation_config.h"
#include "pio/runtime/generator.h"
#include "pio/runtime/qwen3_model.h"
#include "pio/runtime/tokenizer.h"

namespace pio::qwen3 {

struct Qwen3PluginSettings {
  int threads = 2;
  int64_t max_context = 0;  // 0: the model's max_position_embeddings
  bool enable_thinking = true;
  bool load_weights = true;
  bool hybrid_thinking = true;  // chat_template "qwen3"; false for "qwen3_instruct_2507"
};

// Applies the keys of `config` over `settings`; invalid_argument naming the key otherwise.
Status apply_qwen3_settings(const sdk::Json& config, Qwen3PluginSettings* settings);

class Qwen3TextModel : public sdk::TextModelPlugin {
 public:
  // A stream survives its worker's crash: the generator replays the tokens already sent.
  static constexpr bool kResumesGenerations = true;

  Status initialize(const sdk::Json& config) override;
  Result<bool> supports_config(const sdk::Json& config) override;
  Status update_config(const sdk::Json& config) override;
  Status load_model(const sdk::ModelSource& source, const sdk::Json& config) override;
  Status infer(std::span<const sdk::TensorView> inputs, sdk::CallContext& call) override;
  Status cleanup() override;
  Result<sdk::Json> get_model_info() override;
  Result<sdk::Json> execute(std::string_view command, const sdk::Json& params,
                            std::span<const sdk::TensorView> inputs,
                            sdk::CallContext& call) override;

  Result<std::vector<int32_t>> tokenize(std::string_view text) override;
  Result<std::string> detokenize(std::span<const int32_t> token_ids) override;
  Result<sdk::GenerateResult> generate_text(const sdk::GenerateRequest& request,
                                            sdk::TokenStream& out) override;
  Result<sdk::GenerateResult> chat_completion(const sdk::GenerateRequest& request,
                                              sdk::TokenStream& out) override;

 protected:
  virtual std::string_view plugin_name() const = 0;

 private:
  Status need_tokenizer() const;
  Status need_model() const;
  Result<std::string> render_chat(const sdk::Json& messages, const sdk::Json& tools,
                                  bool add_generation_prompt, bool enable_thinking) const;
  Result<sdk::GenerateResult> run(std::vector<int32_t> prompt, const sdk::GenerateRequest& request,
                                  sdk::TokenStream& out);

  Qwen3PluginSettings settings_;
  std::filesystem::path model_dir_;
  std::optional<runtime::Tokenizer> tokenizer_;
  runtime::GenerationConfig generation_;
  std::unique_ptr<runtime::Qwen3Model> model_;
  std::unique_ptr<runtime::Generator> generator_;
};

}  // namespace pio::qwen3
