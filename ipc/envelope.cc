#include "pio/ipc/envelope.h"

#include <fmt/format.h>

namespace pio::ipc {

Result<const wire::Envelope*> verify_envelope(std::span<const uint8_t> bytes,
                                              const EnvelopeLimits& limits) {
  if (bytes.size() > limits.max_bytes) {
    return invalid_argument_error(fmt::format("packet of {} bytes exceeds the {}-byte limit",
                                              bytes.size(), limits.max_bytes));
  }
  // Root offset + file identifier + the smallest table.
  if (bytes.size() < 12) {
    return invalid_argument_error(fmt::format(
        "packet of {} bytes is truncated (an envelope needs at least 12)", bytes.size()));
  }
  if (!wire::EnvelopeBufferHasIdentifier(bytes.data())) {
    return invalid_argument_error("packet does not carry the envelope identifier \"PIO1\"");
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = limits.max_depth;
  options.max_tables = limits.max_tables;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), options);
  if (!wire::VerifyEnvelopeBuffer(verifier)) {
    return invalid_argument_error(fmt::format(
        "packet of {} bytes failed verification: truncated, an offset or vector length points "
        "outside it, or it nests deeper than {} / holds more than {} tables",
        bytes.size(), limits.max_depth, limits.max_tables));
  }
  const wire::Envelope* envelope = wire::GetEnvelope(bytes.data());
  const auto type = envelope->message_type();
  // The generated verifier accepts union types it does not know (forward compatibility); we do
  // not guess at a message from a newer peer.
  if (type == wire::Message::NONE ||
      static_cast<uint8_t>(type) > static_cast<uint8_t>(wire::Message::MAX)) {
    return invalid_argument_error(
        fmt::format("envelope carries an unknown message type {}", static_cast<unsigned>(type)));
  }
  if (envelope->message() == nullptr) {
    return invalid_argument_error(
        fmt::format("envelope of type {} has no message body", message_type_name(type)));
  }
  return envelope;
}

std::string_view message_type_name(wire::Message type) {
  const auto value = static_cast<uint8_t>(type);
  if (value <= static_cast<uint8_t>(wire::Message::MAX)) return wire::EnumNameMessage(type);
  return "unknown";
}

void finish_envelope(flatbuffers::FlatBufferBuilder& fbb, uint64_t request_id, wire::Message type,
                     flatbuffers::Offset<void> message) {
  auto envelope = wire::CreateEnvelope(fbb, request_id, type, message);
  wire::FinishEnvelopeBuffer(fbb, envelope);
}

wire::ErrorCode to_wire(ErrorCode code) { return static_cast<wire::ErrorCode>(code); }

ErrorCode from_wire(wire::ErrorCode code) {
  const auto value = static_cast<int>(code);
  if (value < 0 || value > static_cast<int>(ErrorCode::kWorkerCrashed)) return ErrorCode::kInternal;
  return static_cast<ErrorCode>(value);
}

}  // namespace pio::ipc

namespace pio::ipc {
static_assert(static_cast<int>(wire::ErrorCode::WorkerCrashed) ==
                      static_cast<int>(ErrorCode::kWorkerCrashed) &&
                  static_cast<int>(wire::ErrorCode::InvalidArgument) ==
                      static_cast<int>(ErrorCode::kInvalidArgument),
              "wire::ErrorCode must mirror pio::ErrorCode value for value");
}  // namespace pio::ipc
