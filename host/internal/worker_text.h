#pragma once
// worker_text: the one way the host reads a string field of a message from a worker (a Hello's
// plugin name, an Error's message, a TokenChunk's text, a Result's json).
//
// The verifier guarantees only that the bytes lie inside the packet; what they say is the
// worker's choice. Each string is made valid UTF-8 here, where it enters the host, so that
// statuses, crash reports, streamed text and everything that serialises them (the server's JSON,
// logs) never meet invalid bytes. Loop thread or not: it is a pure function.

#include <flatbuffers/flatbuffers.h>

#include <string>

#include "pio/ipc/utf8.h"

namespace pio::host::internal {

// The field's text with ill-formed sequences replaced by U+FFFD; "" when the field is absent.
inline std::string worker_text(const flatbuffers::String* field) {
  return field == nullptr ? std::string() : ipc::to_valid_utf8(field->string_view());
}

}  // namespace pio::host::internal
