#pragma once
// One JSON document per output line. Model text can hold invalid UTF-8 (a token cut inside a
// character), which nlohmann refuses to serialise by throwing; such bytes become U+FFFD instead.

#include <nlohmann/json.hpp>
#include <string>

namespace pio::cli {

inline std::string json_line(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace pio::cli
