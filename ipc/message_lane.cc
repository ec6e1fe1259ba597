#include "pio/ipc/message_lane.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>

namespace pio::ipc {
namespace {

constexpr uint64_t kTailOffset = 64;
constexpr uint64_t kSleepingOffset = 128;
// Inside a slot header: { u32 length, u32 kind, u64 sequence }.
constexpr uint64_t kSequenceOffset = 8;

template <typename T>
std::atomic_ref<T> shared_word(std::byte* region, uint64_t offset) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(region + offset));
}

Status violation(const std::string& what) {
  return invalid_argument_error("protocol violation: " + what);
}

}  // namespace

void MessageLane::initialize(std::byte* region, uint32_t slots, uint32_t slot_bytes) {
  std::memset(region, 0, region_size(slots, slot_bytes));
}

LaneWriter::LaneWriter(std::byte* region, uint32_t slots, uint32_t slot_bytes)
    : region_(region), slots_(slots), slot_bytes_(slot_bytes) {}

Result<uint64_t> LaneWriter::slots_in_use() {
  // The consumer's tail is re-read only when the lane looks full: in a busy exchange that keeps
  // its cache line where it is (each transfer between CPUs costs ~60 ns here).
  if (head_ - cached_tail_ == slots_) {
    const uint64_t tail =
        shared_word<uint64_t>(region_, kTailOffset).load(std::memory_order_acquire);
    if (tail > head_ || head_ - tail > slots_ || tail < cached_tail_) {
      return violation(
          fmt::format("lane tail {} is impossible with head {}, {} slots and an "
                      "earlier tail {}",
                      tail, head_, slots_, cached_tail_));
    }
    cached_tail_ = tail;
  }
  return head_ - cached_tail_;
}

Result<bool> LaneWriter::has_space() {
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
  // Publishing = the slot's sequence word becomes the message's number (1-based). seq_cst pairs
  // with the consumer's announce-then-recheck: either it sees this word, or we see its flag.
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(slot + kSequenceOffset))
      .store(head_, std::memory_order_seq_cst);
  return ok_status();
}

bool LaneWriter::take_consumer_sleeping() {
  return shared_word<uint32_t>(region_, kSleepingOffset).exchange(0, std::memory_order_seq_cst) !=
         0;
}

LaneReader::LaneReader(std::byte* region, uint32_t slots, uint32_t slot_bytes)
    : region_(region), slots_(slots), slot_bytes_(slot_bytes) {}

Result<bool> LaneReader::has_message() const {
  const std::byte* slot =
      region_ + MessageLane::kSlotsOffset + (tail_ & (slots_ - 1)) * uint64_t{slot_bytes_};
  const uint64_t sequence =
      std::atomic_ref<uint64_t>(
          *reinterpret_cast<uint64_t*>(const_cast<std::byte*>(slot) + kSequenceOffset))
          .load(std::memory_order_seq_cst);
  const uint64_t expected = tail_ + 1;
  // Not yet written: the slot still holds the number from the previous lap (0 on the first).
  const uint64_t previous_lap = expected > slots_ ? expected - slots_ : 0;
  if (sequence == expected) return true;
  if (sequence == previous_lap) return false;
  return violation(fmt::format("lane slot {} holds message number {}; expected {} or {}",
                               tail_ & (slots_ - 1), sequence, expected, previous_lap));
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
    return violation(fmt::format("lane slot claims {} bytes, more than the {} a slot holds", length,
                                 max_payload));
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
