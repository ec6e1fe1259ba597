#include "pio/ipc/message_lane.h"

#include <atomic>
#include <cstring>

#include <fmt/format.h>

namespace pio::ipc {
namespace {

constexpr uint64_t kHeadOffset = 0;
constexpr uint64_t kTailOffset = 64;
constexpr uint64_t kSleepingOffset = 128;

template <typename T>
std::atomic_ref<T> shared_word(std::byte* region, uint64_t offset) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(region + offset));
}

Status violation(std::string what) {
  return invalid_argument_error("protocol violation: " + what);
}

}  // namespace

void MessageLane::initialize(std::byte* region) { std::memset(region, 0, kSlotsOffset); }

LaneWriter::LaneWriter(std::byte* region, uint32_t slots, uint32_t slot_bytes)
    : region_(region), slots_(slots), slot_bytes_(slot_bytes) {}

Result<uint64_t> LaneWriter::slots_in_use() const {
  const uint64_t tail = shared_word<uint64_t>(region_, kTailOffset).load(std::memory_order_acquire);
  if (tail > head_ || head_ - tail > slots_) {
    return violation(fmt::format("lane tail {} is impossible with head {} and {} slots", tail,
                                 head_, slots_));
  }
  return head_ - tail;
}

Result<bool> LaneWriter::has_space() const {
  PIO_ASSIGN_OR_RETURN(uint64_t used, slots_in_use());
  return used < slots_;
}

Status LaneWriter::try_push(LaneSlotKind kind, std::span<const uint8_t> payload) {
  PIO_CHECK(payload.size() <= max_payload());
  PIO_ASSIGN_OR_RETURN(uint64_t used, slots_in_use());
  if (used == slots_) return resource_exhausted_error("message lane full");
  std::byte* slot =
      region_ + MessageLane::kSlotsOffset + (head_ & (slots_ - 1)) * uint64_t{slot_bytes_};
  const uint32_t header[2] = {static_cast<uint32_t>(payload.size()), static_cast<uint32_t>(kind)};
  std::memcpy(slot, header, sizeof(header));
  if (!payload.empty()) {
    std::memcpy(slot + MessageLane::kSlotHeaderBytes, payload.data(), payload.size());
  }
  ++head_;
  // seq_cst pairs with the consumer's announce-then-recheck: either it sees this head, or we see
  // its sleeping flag.
  shared_word<uint64_t>(region_, kHeadOffset).store(head_, std::memory_order_seq_cst);
  return ok_status();
}

bool LaneWriter::take_consumer_sleeping() {
  return shared_word<uint32_t>(region_, kSleepingOffset).exchange(0, std::memory_order_seq_cst) != 0;
}

LaneReader::LaneReader(std::byte* region, uint32_t slots, uint32_t slot_bytes)
    : region_(region), slots_(slots), slot_bytes_(slot_bytes) {}

Result<bool> LaneReader::has_message() const {
  const uint64_t head = shared_word<uint64_t>(region_, kHeadOffset).load(std::memory_order_seq_cst);
  if (head < tail_ || head - tail_ > slots_) {
    return violation(fmt::format("lane head {} is impossible with tail {} and {} slots", head,
                                 tail_, slots_));
  }
  return head != tail_;
}

Result<bool> LaneReader::try_pop(LaneSlotKind* kind, std::vector<uint8_t>* out) {
  PIO_ASSIGN_OR_RETURN(bool waiting, has_message());
  if (!waiting) return false;
  const std::byte* slot =
      region_ + MessageLane::kSlotsOffset + (tail_ & (slots_ - 1)) * uint64_t{slot_bytes_};
  uint32_t header[2];
  std::memcpy(header, slot, sizeof(header));  // read once; the peer may change it after
  const uint32_t length = header[0];
  const uint32_t max_payload = slot_bytes_ - MessageLane::kSlotHeaderBytes;
  if (length > max_payload) {
    return violation(
        fmt::format("lane slot claims {} bytes, more than the {} a slot holds", length, max_payload));
  }
  if (header[1] != static_cast<uint32_t>(LaneSlotKind::kInline) &&
      header[1] != static_cast<uint32_t>(LaneSlotKind::kOnSocket)) {
    return violation(fmt::format("lane slot has unknown kind {}", header[1]));
  }
  *kind = static_cast<LaneSlotKind>(header[1]);
  const auto* payload = reinterpret_cast<const uint8_t*>(slot + MessageLane::kSlotHeaderBytes);
  out->assign(payload, payload + length);
  ++tail_;
  shared_word<uint64_t>(region_, kTailOffset).store(tail_, std::memory_order_release);
  return true;
}

void LaneReader::announce_sleeping() {
  shared_word<uint32_t>(region_, kSleepingOffset).store(1, std::memory_order_seq_cst);
}

void LaneReader::withdraw_sleeping() {
  shared_word<uint32_t>(region_, kSleepingOffset).store(0, std::memory_order_relaxed);
}

}  // namespace pio::ipc
