#pragma once
// json_text: a JSON value as text, without ever throwing. nlohmann's plain dump() throws on a
// string that is not valid UTF-8, and strings reach the server from workers (crash reports,
// token text, plugin names) and clients; one such byte must not end a request thread or the
// process. Invalid bytes become U+FFFD, as the OpenAI API does for a token cut inside a
// character. Every JSON the server and the CLI print goes through here.

#include <nlohmann/json.hpp>
#include <string>

namespace pio::server {

template <typename Json>
std::string json_text(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace pio::server
