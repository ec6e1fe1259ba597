#pragma once
// MessageLane: a single-producer, single-consumer queue of small messages in one region of the
// shared-memory arena, one lane per direction. It is the fast path of the control channel
// (~1-2 us a round trip when both sides spin, against ~27 us through the socket).
//
// Layout of a lane region:
//   +64   tail  (u64, written by the consumer: messages consumed so far)
//   +128  consumer_sleeping (u32: the consumer will block on the socket; the producer must wake it)
//   +256  slots[n]: { u32 length, u32 kind, u64 sequence, payload[slot_bytes - 16] }
// A slot is published when its sequence word becomes the message's number (1-based), so a
// consumer touches only the slot's cache line per message, and a producer reads the consumer's
// tail only when the lane looks full.
//
// The peer can scribble on all of it at any time. So each side keeps its own index privately
// (the shared one is only published), checks what it reads of the peer against what is possible
// (a slot's number is the expected one or the previous lap's; a tail lies between the last tail
// seen and the head), reads each slot header once into private memory, bounds-checks the length,
// and copies the payload out before anyone parses it. A violation is reported, never trusted.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pio/ipc/status.h"

namespace pio::ipc {

enum class LaneSlotKind : uint32_t {
  kInline = 1,    // the payload is the message
  kOnSocket = 2,  // the message is the next data packet on the control socket (large, or has fds)
};

class MessageLane {
 public:
  static constexpr uint32_t kSlotHeaderBytes = 16;
  static constexpr uint64_t kSlotsOffset = 256;

  static uint64_t region_size(uint32_t slots, uint32_t slot_bytes) {
    return kSlotsOffset + uint64_t{slots} * slot_bytes;
  }
  // Zeroes the whole lane. Host only, before the worker maps the arena.
  static void initialize(std::byte* region, uint32_t slots, uint32_t slot_bytes);
};

// The producer end. Not thread-safe: one sending thread at a time.
class LaneWriter {
 public:
  LaneWriter() = default;
  LaneWriter(std::byte* region, uint32_t slots, uint32_t slot_bytes);

  uint32_t max_payload() const { return slot_bytes_ - MessageLane::kSlotHeaderBytes; }

  // Publishes one message. resource_exhausted when the lane is full (the caller waits: this is
  // backpressure, nothing is dropped); invalid_argument ("protocol violation") when the
  // consumer's published tail is impossible.
  Status try_push(LaneSlotKind kind, std::span<const uint8_t> payload);

  // Whether try_push would find a free slot now (same checks on the consumer's tail).
  Result<bool> has_space();

  // True when the consumer announced it is going to sleep; clears the announcement. The caller
  // must then wake the consumer (a wake packet on the socket).
  bool take_consumer_sleeping();

 private:
  std::byte* region_ = nullptr;
  uint32_t slots_ = 0;
  uint32_t slot_bytes_ = 0;
  // Slots in use by the cached tail; re-reads and checks the consumer's tail when full.
  Result<uint64_t> slots_in_use();

  uint64_t head_ = 0;         // private: messages published
  uint64_t cached_tail_ = 0;  // the consumer's tail when last read
};

// The consumer end. Not thread-safe: one receiving thread at a time.
class LaneReader {
 public:
  LaneReader() = default;
  LaneReader(std::byte* region, uint32_t slots, uint32_t slot_bytes);

  // Copies the next message into *out (private memory) and consumes its slot. Returns false when
  // the lane is empty; invalid_argument ("protocol violation") on an impossible sequence number or
  // slot header.
  Result<bool> try_pop(LaneSlotKind* kind, std::vector<uint8_t>* out);

  // Whether a message is waiting (same checks on the slot's sequence number as try_pop).
  Result<bool> has_message() const;

  // Announce / withdraw "I am about to block; wake me". After announcing, check the lane once
  // more before blocking (the producer may have published just before seeing the flag).
  void announce_sleeping();
  void withdraw_sleeping();

 private:
  std::byte* region_ = nullptr;
  uint32_t slots_ = 0;
  uint32_t slot_bytes_ = 0;
  uint64_t tail_ = 0;  // private
};

}  // namespace pio::ipc
