// minimal: the smallest useful plugin, as a template. infer() returns every input unchanged (a
// copy into the output ring); get_model_info() describes that. Everything else is the SDK's
// default (initialize, cleanup, install and supports_config succeed; execute knows no command).

#include <cstring>

#include "pio/plugin.hpp"

namespace {

class MinimalPlugin final : public pio::sdk::ModelPlugin {
 public:
  static constexpr const char* kPluginName = "minimal";
  static constexpr const char* kPluginVersion = "0.1.0";

  pio::Status load_model(const pio::sdk::ModelSource& source, const pio::sdk::Json&) override {
    model_path_ = std::string(source.path());
    return pio::ok_status();
  }

  pio::Status infer(std::span<const pio::sdk::TensorView> inputs,
                    pio::sdk::CallContext& call) override {
    for (const auto& input : inputs) {
      PIO_ASSIGN_OR_RETURN(auto out,
                           call.allocate_output(input.name(), input.dtype(), input.shape()));
      if (!out.empty()) std::memcpy(out.data(), input.bytes().data(), out.size());
    }
    return pio::ok_status();
  }

  pio::Result<pio::sdk::Json> get_model_info() override {
    return pio::sdk::Json{{"name", kPluginName},
                          {"version", kPluginVersion},
                          {"model_path", model_path_},
                          {"infer", "returns every input tensor unchanged"}};
  }

 private:
  std::string model_path_;
};

}  // namespace

PIO_PLUGIN(MinimalPlugin)
