// Fuzzes what the host does with a packet from a worker: verify_envelope, then, for every tensor
// descriptor in it, validate_tensor_desc against a ring, and a read of every byte of each view the
// validation accepted (so an accepted out-of-bounds view shows as an ASan report).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pio/ipc/envelope.h"
#include "pio/ipc/tensor_view.h"

namespace {

// A fake arena: a ring of 64 KiB at offset 4096.
constexpr uint64_t kRingOffset = 4096;
constexpr uint64_t kRingSize = 64 * 1024;
std::vector<std::byte>& arena() {
  static std::vector<std::byte> bytes(kRingOffset + kRingSize);
  return bytes;
}

volatile uint8_t g_sink;

void check_tensors(const flatbuffers::Vector<flatbuffers::Offset<pio::wire::TensorDesc>>* list,
                   pio::wire::Ring ring) {
  if (list == nullptr) return;
  const pio::ipc::RegionBounds bounds{arena().data(), kRingOffset, kRingSize};
  for (const auto* desc : *list) {
    auto view = pio::ipc::validate_tensor_desc(desc, ring, bounds);
    if (!view.ok()) continue;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < view->length; ++i) acc ^= static_cast<uint8_t>(view->data[i]);
    g_sink = acc;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The channel always verifies a private, aligned copy.
  std::vector<uint8_t> copy(data, data + size);
  auto envelope = pio::ipc::verify_envelope(copy);
  if (!envelope.ok()) return 0;
  const pio::wire::Envelope* e = *envelope;
  (void)pio::ipc::message_type_name(e->message_type());
  if (const auto* infer = e->message_as_Infer()) {
    check_tensors(infer->inputs(), pio::wire::Ring::HostToWorker);
  } else if (const auto* result = e->message_as_Result()) {
    check_tensors(result->outputs(), pio::wire::Ring::WorkerToHost);
  } else if (const auto* release = e->message_as_Release()) {
    check_tensors(release->tensors(), pio::wire::Ring::HostToWorker);
  } else if (const auto* chunk = e->message_as_TokenChunk()) {
    if (chunk->token_ids() != nullptr) {
      int64_t sum = 0;
      for (int32_t id : *chunk->token_ids()) sum += id;
      g_sink = static_cast<uint8_t>(sum);
    }
    if (chunk->text() != nullptr) g_sink = static_cast<uint8_t>(chunk->text()->size());
  } else if (const auto* error = e->message_as_Error()) {
    (void)pio::ipc::from_wire(error->code());
  }
  return 0;
}
