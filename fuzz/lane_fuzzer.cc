// Fuzzes the host's LaneReader: the input becomes the whole lane region (indices, sleeping flag,
// slot headers and payloads), as a worker could have written it. Every pop must either copy a
// message of at most a slot's payload or report a violation.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pio/ipc/envelope.h"
#include "pio/ipc/message_lane.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint32_t kSlots = 8;
  constexpr uint32_t kSlotBytes = 128;
  std::vector<std::byte> region(pio::ipc::MessageLane::region_size(kSlots, kSlotBytes));
  std::memcpy(region.data(), data, std::min(size, region.size()));
  pio::ipc::LaneReader reader(region.data(), kSlots, kSlotBytes);
  std::vector<uint8_t> out;
  for (int i = 0; i < 32; ++i) {
    pio::ipc::LaneSlotKind kind;
    auto popped = reader.try_pop(&kind, &out);
    if (!popped.ok() || !*popped) break;
    if (out.size() > kSlotBytes - pio::ipc::MessageLane::kSlotHeaderBytes) __builtin_trap();
    (void)pio::ipc::verify_envelope(out);
  }
  return 0;
}
