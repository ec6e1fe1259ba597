#pragma once
// Envelope verification and building: the only way bytes from a peer become a message.
//
// verify_envelope() runs on a private copy of the bytes (never on shared memory, which the peer
// can change between the check and the use) and must succeed before any field is read.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "pio/ipc/messages_generated.h"
#include "pio/ipc/status.h"

namespace pio::ipc {

struct EnvelopeLimits {
  // Largest packet accepted; larger ones are refused before they are read.
  size_t max_bytes = 1u << 20;
  // Deepest table nesting and most tables the flatbuffers Verifier accepts.
  uint32_t max_depth = 16;
  uint32_t max_tables = 4096;
};

// Checks size, file identifier, structure (flatbuffers Verifier: offsets, vector lengths,
// strings, nesting, table count) and that the union holds a message type this build knows.
// The returned pointer aliases `bytes`.
Result<const wire::Envelope*> verify_envelope(std::span<const uint8_t> bytes,
                                              const EnvelopeLimits& limits = {});

// "Hello", "TokenChunk", ...; "unknown(N)" for values past the schema.
std::string_view message_type_name(wire::Message type);

// Finishes `fbb` as an Envelope carrying `message` (from wire::CreateX(fbb, ...).Union()).
void finish_envelope(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id, wire::Message type,
                     flatbuffers::Offset<void> message);

inline std::span<const uint8_t> builder_bytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetSize()};
}

// Status <-> wire error code, for Error messages.
wire::ErrorCode to_wire(ErrorCode code);
ErrorCode from_wire(wire::ErrorCode code);

}  // namespace pio::ipc
