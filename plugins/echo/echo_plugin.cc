// echo: the recommended template for a text model plugin. Every verb of pio/plugin.hpp is here,
// with behaviour simple enough to check by hand:
//
//   tokenize / detokenize  one token per Unicode code point; the token id is the code point.
//   generate_text          streams the prompt back, one token (character) per chunk, at most
//                          max_tokens of them: finish "stop" when the whole prompt was echoed,
//                          "length" when max_tokens cut it short, "cancelled" when the host
//                          cancelled. config "token_delay_ms" sleeps between tokens (to watch
//                          streaming and cancellation happen). Resumable: after a worker crash
//                          it continues from the characters the client already has.
//   chat_completion        as generate_text, echoing the content of the last message.
//   infer                  every input comes back under the same name and shape: F32 elements
//                          doubled; any other dtype with its bytes in reverse order.
//   execute                "reverse" {"text"} -> {"text": the characters reversed};
//                          "sum" (one F32 input) -> {"sum": the sum of its elements}.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "echo_text.h"
#include "fmt/format.h"
#include "pio/plugin.hpp"

namespace {

using pio::Result;
using pio::Status;
using pio::sdk::Json;

class EchoPlugin final : public pio::sdk::TextModelPlugin {
 public:
  static constexpr const char* kPluginName = "echo";
  static constexpr const char* kPluginVersion = "0.1.0";
  static constexpr bool kResumesGenerations = true;

  Status initialize(const Json& config) override { return apply_config(config); }

  Status update_config(const Json& config) override { return apply_config(config); }

  Result<bool> supports_config(const Json& config) override {
    for (const auto& [key, value] : config.items()) {
      if (key != "token_delay_ms" || !value.is_number_unsigned()) return false;
    }
    return true;
  }

  Status load_model(const pio::sdk::ModelSource& source, const Json&) override {
    // Echo has no weights; it remembers what it was given, so get_model_info can show it.
    model_path_ = std::string(source.path());
    loaded_ = true;
    return pio::ok_status();
  }

  Status cleanup() override {
    loaded_ = false;
    model_path_.clear();
    return pio::ok_status();
  }

  Result<Json> get_model_info() override {
    return Json{{"name", kPluginName},
                {"version", kPluginVersion},
                {"model_family", "echo"},
                {"loaded", loaded_},
                {"model_path", model_path_},
                {"tokenizer", "one token per Unicode code point (id = code point)"},
                {"token_delay_ms", token_delay_ms_}};
  }

  Status infer(std::span<const pio::sdk::TensorView> inputs, pio::sdk::CallContext& call) override {
    for (const auto& input : inputs) {
      PIO_ASSIGN_OR_RETURN(auto out,
                           call.allocate_output(input.name(), input.dtype(), input.shape()));
      if (input.dtype() == pio::sdk::DType::kF32) {
        const auto in = input.as<float>();
        auto* dst = reinterpret_cast<float*>(out.data());
        for (size_t i = 0; i < in.size(); ++i) dst[i] = in[i] * 2.0f;
      } else {
        const auto in = input.bytes();
        for (size_t i = 0; i < in.size(); ++i) out[i] = in[in.size() - 1 - i];
      }
    }
    return pio::ok_status();
  }

  Result<Json> execute(std::string_view command, const Json& params,
                       std::span<const pio::sdk::TensorView> inputs,
                       pio::sdk::CallContext&) override {
    if (command == "reverse") {
      if (!params.contains("text") || !params["text"].is_string()) {
        return pio::invalid_argument_error("reverse: params must be {\"text\": \"...\"}");
      }
      auto cps = pio::echo::code_points(params["text"].get<std::string>());
      std::reverse(cps.begin(), cps.end());
      return Json{{"text", pio::echo::utf8_of(cps)}};
    }
    if (command == "sum") {
      if (inputs.size() != 1 || inputs[0].dtype() != pio::sdk::DType::kF32) {
        return pio::invalid_argument_error(
            fmt::format("sum: needs exactly one F32 input, got {} inputs", inputs.size()));
      }
      double sum = 0;
      for (float v : inputs[0].as<float>()) sum += v;
      return Json{{"sum", sum}};
    }
    return pio::not_found_error(fmt::format(
        "execute: echo has no command \"{}\" (it has \"reverse\" and \"sum\")", command));
  }

  Result<std::vector<int32_t>> tokenize(std::string_view text) override {
    return pio::echo::code_points(text);
  }

  Result<std::string> detokenize(std::span<const int32_t> token_ids) override {
    return pio::echo::utf8_of(token_ids);
  }

  Result<pio::sdk::GenerateResult> generate_text(const pio::sdk::GenerateRequest& request,
                                                 pio::sdk::TokenStream& out) override {
    std::vector<int32_t> prompt = request.prompt_token_ids.has_value()
                                      ? std::vector<int32_t>(request.prompt_token_ids->begin(),
                                                             request.prompt_token_ids->end())
                                      : pio::echo::code_points(request.prompt);
    return echo(prompt, request, out);
  }

  Result<pio::sdk::GenerateResult> chat_completion(const pio::sdk::GenerateRequest& request,
                                                   pio::sdk::TokenStream& out) override {
    if (request.messages.empty() || !request.messages.back().is_object() ||
        !request.messages.back().contains("content") ||
        !request.messages.back()["content"].is_string()) {
      return pio::invalid_argument_error(
          "chat_completion: the last message needs a string \"content\"");
    }
    return echo(pio::echo::code_points(request.messages.back()["content"].get<std::string>()),
                request, out);
  }

 private:
  Status apply_config(const Json& config) {
    if (config.contains("token_delay_ms")) {
      if (!config["token_delay_ms"].is_number_unsigned()) {
        return pio::invalid_argument_error("config: token_delay_ms must be a non-negative integer");
      }
      token_delay_ms_ = config["token_delay_ms"].get<uint32_t>();
    }
    return pio::ok_status();
  }

  Result<pio::sdk::GenerateResult> echo(const std::vector<int32_t>& prompt,
                                        const pio::sdk::GenerateRequest& request,
                                        pio::sdk::TokenStream& out) {
    const uint32_t max_tokens = request.params.max_tokens;
    pio::sdk::GenerateResult result;
    result.prompt_tokens = static_cast<uint32_t>(prompt.size());
    // A resumed generation: what the client has must be what echo would have sent.
    const auto resumed = request.resume_token_ids.value_or(std::span<const int32_t>());
    if (resumed.size() > prompt.size() || resumed.size() > max_tokens ||
        !std::equal(resumed.begin(), resumed.end(), prompt.begin())) {
      return pio::invalid_argument_error(
          "generate: the tokens to resume after are not a prefix of this echo's output");
    }
    result.completion_tokens = static_cast<uint32_t>(resumed.size());
    std::string piece;
    for (size_t i = resumed.size(); i < prompt.size(); ++i) {
      if (result.completion_tokens == max_tokens) {
        result.finish_reason = pio::sdk::FinishReason::kLength;
        return result;
      }
      if (token_delay_ms_ > 0 && i > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(token_delay_ms_));
      }
      piece.clear();
      pio::echo::append_utf8(prompt[i], &piece);
      if (out.cancelled() || !out.emit(std::span(&prompt[i], 1), piece)) {
        result.finish_reason = pio::sdk::FinishReason::kCancelled;
        return result;
      }
      ++result.completion_tokens;
    }
    result.finish_reason = pio::sdk::FinishReason::kStop;
    return result;
  }

  uint32_t token_delay_ms_ = 0;
  bool loaded_ = false;
  std::string model_path_;
};

}  // namespace

PIO_PLUGIN(EchoPlugin)
