// The C entry of one Qwen3 plugin library: the model code is Qwen3TextModel's, shared by every
// Qwen3 dense manifest; this file only gives the library its plugin name (PIO_QWEN3_PLUGIN_NAME,
// set by CMakeLists.txt), which its Hello must carry to match its manifest.
#include "pio/plugin.hpp"
#include "qwen3_text_model.h"

#ifndef PIO_QWEN3_PLUGIN_NAME
#error "PIO_QWEN3_PLUGIN_NAME must name the plugin (its manifest's name)"
#endif

namespace {

class Qwen3Plugin final : public pio::qwen3::Qwen3TextModel {
 public:
  static constexpr const char* kPluginName = PIO_QWEN3_PLUGIN_NAME;
  static constexpr const char* kPluginVersion = "0.1.0";

 protected:
  std::string_view plugin_name() const override { return kPluginName; }
};

}  // namespace

PIO_PLUGIN(Qwen3Plugin)
