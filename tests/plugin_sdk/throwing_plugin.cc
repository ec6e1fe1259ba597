// A test plugin whose verbs throw: the SDK's C boundary must turn each exception into
// PIO_ERROR_INTERNAL carrying its what(), and the worker must answer with an Error and keep going.

#include <stdexcept>

#include "pio/plugin.hpp"

namespace {

class ThrowingPlugin final : public pio::sdk::ModelPlugin {
 public:
  static constexpr const char* kPluginName = "throwing";
  static constexpr const char* kPluginVersion = "0.0.1";

  pio::Status load_model(const pio::sdk::ModelSource&, const pio::sdk::Json&) override {
    throw 42;  // not a std::exception
  }
  pio::Status infer(std::span<const pio::sdk::TensorView>, pio::sdk::CallContext&) override {
    throw std::runtime_error("boom: thrown inside infer");
  }
  pio::Result<pio::sdk::Json> get_model_info() override {
    return pio::sdk::Json{{"name", kPluginName}};
  }
};

}  // namespace

PIO_PLUGIN(ThrowingPlugin)
