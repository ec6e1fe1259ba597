#include "pio/ipc/arena_layout.h"

#include <fmt/format.h>

#include <cstring>

#include "pio/ipc/message_lane.h"

namespace pio::ipc {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMagic = 0x31414e4552414f49ull;  // "IOARENA1"
constexpr uint32_t kMaxLaneSlots = 1u << 16;
constexpr uint32_t kMaxLaneSlotBytes = 1u << 20;
constexpr uint64_t kMaxRingBytes = 64ull << 30;

uint64_t page_align(uint64_t n) { return (n + kPage - 1) / kPage * kPage; }

// The header page as the worker reads it. Plain integers; the host only ever writes it.
struct HeaderImage {
  uint64_t magic;
  uint32_t lane_slots;
  uint32_t lane_slot_bytes;
  uint64_t host_to_worker_ring_bytes;
  uint64_t worker_to_host_ring_bytes;
};

}  // namespace

Result<ArenaLayout> ArenaLayout::compute(const ArenaConfig& config) {
  if (config.lane_slots < 2 || config.lane_slots > kMaxLaneSlots ||
      (config.lane_slots & (config.lane_slots - 1)) != 0) {
    return invalid_argument_error(
        fmt::format("arena config: lane_slots {} must be a power of two in [2, {}]",
                    config.lane_slots, kMaxLaneSlots));
  }
  if (config.lane_slot_bytes < MessageLane::kSlotHeaderBytes + 64 ||
      config.lane_slot_bytes > kMaxLaneSlotBytes || config.lane_slot_bytes % 64 != 0) {
    return invalid_argument_error(
        fmt::format("arena config: lane_slot_bytes {} must be a multiple of 64 in [{}, {}]",
                    config.lane_slot_bytes, MessageLane::kSlotHeaderBytes + 64, kMaxLaneSlotBytes));
  }
  for (uint64_t ring : {config.host_to_worker_ring_bytes, config.worker_to_host_ring_bytes}) {
    if (ring == 0 || ring > kMaxRingBytes || ring % kPage != 0) {
      return invalid_argument_error(
          fmt::format("arena config: ring size {} must be a non-zero multiple of {} up to {}", ring,
                      kPage, kMaxRingBytes));
    }
  }
  ArenaLayout layout;
  layout.config_ = config;
  const uint64_t lane_bytes =
      page_align(MessageLane::region_size(config.lane_slots, config.lane_slot_bytes));
  uint64_t at = kPage;  // the header page
  layout.lane_h2w_ = {at, lane_bytes};
  at += lane_bytes;
  layout.lane_w2h_ = {at, lane_bytes};
  at += lane_bytes;
  layout.ring_h2w_ = {at, config.host_to_worker_ring_bytes};
  at += config.host_to_worker_ring_bytes;
  layout.ring_w2h_ = {at, config.worker_to_host_ring_bytes};
  at += config.worker_to_host_ring_bytes;
  layout.total_size_ = at;
  return layout;
}

void ArenaLayout::write_to(ShmArena& arena) const {
  PIO_CHECK(arena.size() >= total_size_);
  const HeaderImage image{kMagic, config_.lane_slots, config_.lane_slot_bytes,
                          config_.host_to_worker_ring_bytes, config_.worker_to_host_ring_bytes};
  std::memcpy(arena.data(), &image, sizeof(image));
}

Result<ArenaLayout> ArenaLayout::read_from(const ShmArena& arena) {
  if (arena.size() < kPage) return invalid_argument_error("arena smaller than its header page");
  HeaderImage image{};
  std::memcpy(&image, arena.data(), sizeof(image));
  if (image.magic != kMagic) {
    return invalid_argument_error("arena header: bad magic (not an arena the host laid out)");
  }
  ArenaConfig config{image.lane_slots, image.lane_slot_bytes, image.host_to_worker_ring_bytes,
                     image.worker_to_host_ring_bytes};
  PIO_ASSIGN_OR_RETURN(ArenaLayout layout, compute(config));
  if (layout.total_size() > arena.size()) {
    return invalid_argument_error(fmt::format(
        "arena header describes {} bytes but the arena has {}", layout.total_size(), arena.size()));
  }
  return layout;
}

}  // namespace pio::ipc
