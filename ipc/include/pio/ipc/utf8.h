#pragma once
// UTF-8 validity for strings that come from a peer (a worker's Hello name, error messages, token
// text, Result json, its stderr).
//
// The host treats every such string as bytes the worker chose: they are made valid UTF-8 once,
// where they enter the host, so that nothing downstream (a strict JSON dump, a log line, an HTTP
// body) has to expect anything else.

#include <string>
#include <string_view>

namespace pio::ipc {

// True when `bytes` is well-formed UTF-8 (Unicode table 3-7: no overlong forms, no surrogates,
// nothing past U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// `bytes` with every ill-formed sequence replaced by U+FFFD, one per maximal subpart (the Unicode
// recommendation, as browsers and nlohmann's `replace` handler do). Valid input comes back as is.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace pio::ipc
