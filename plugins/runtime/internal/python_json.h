#pragma once
// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it, which is what the
// `tojson` filter of Hugging Face chat templates produces: ", " and ": " separators, keys in the
// order given, non-ASCII left as is, control characters as \u00xx, floats as Python's repr.

#include <nlohmann/json.hpp>
#include <string>

#include "pio/ipc/status.h"

namespace pio::runtime::internal {

// Keys come out in the order `value` holds them: pass an ordered_json parsed from the caller's
// text, or the output will not match a template rendered from that same text. Values nested more
// than kMaxPythonJsonDepth deep (request bodies are untrusted) and binary values (JSON text has
// none) are refused.
constexpr int kMaxPythonJsonDepth = 128;
Status append_python_json(const nlohmann::ordered_json& value, std::string& out);

}  // namespace pio::runtime::internal
