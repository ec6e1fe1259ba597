#pragma once
// One JSON document per output line. Model text can hold invalid UTF-8 (a token cut inside a
// character), which nlohmann refuses to serialise by throwing; such bytes become U+FFFD instead
// (json_text).

#include <nlohmann/json.hpp>
#include <string>

#include "json_text.h"

namespace pio::cli {

inline std::string json_line(const nlohmann::ordered_json& value) {
  return server::json_text(value) + "\n";
}

}  // namespace pio::cli
