#pragma once
// ShmRing: the producer's allocator of contiguous byte ranges ("slots") inside one ring region of
// the shared-memory arena.
//
// Every piece of its state (head, tail, the list of live slots) is private memory of the producer:
// nothing of it lives in shared memory, because the peer can rewrite the arena at any moment. The
// peer only ever hands slots back through release(), and release() treats what it is told as a
// claim to check, never as a fact: an offset it did not hand out, a wrong length or a second
// release is refused with invalid_argument and leaves the allocator exactly as it was.
//
// Offsets are ARENA offsets (from the start of the whole shared-memory arena, not from the start
// of the ring region), so a slot's offset can go straight into a TensorDesc and be checked against
// the ring's bounds by validate_tensor_desc().
//
// The one thing a caller gets wrong: resource_exhausted from allocate() is backpressure, not a
// failure. The ring is full of slots the consumer has not released yet; wait for a Release and try
// again. Dropping the data instead loses it. Not thread-safe: one producer owns one ShmRing.

#include <cstdint>
#include <deque>
#include <map>

#include "pio/ipc/status.h"

namespace pio::ipc {

// A byte range of the arena handed out by ShmRing. `offset` is from the start of the arena.
struct RingSlot {
  uint64_t offset = 0;
  uint64_t length = 0;

  friend bool operator==(const RingSlot&, const RingSlot&) = default;
};

class ShmRing {
 public:
  static constexpr uint64_t kDefaultAlignment = 64;  // one cache line; enough for any dtype/SIMD.

  // No mapping is larger than this; bounding the size keeps all position arithmetic far from
  // overflow.
  static constexpr uint64_t kMaxSize = uint64_t{1} << 48;

  // A ring over arena bytes [base_offset, base_offset + size). invalid_argument when size is 0 or
  // above kMaxSize, or the range wraps around the 64-bit offset space.
  static Result<ShmRing> create(uint64_t base_offset, uint64_t size);

  // A contiguous slot of `length` bytes whose arena offset is a multiple of `alignment` (a power
  // of two). When the slot does not fit between the head and the end of the region, the tail end
  // is skipped and the slot starts at the beginning of the region. Slots of length 0 are allowed
  // (empty tensors) and still get an offset of their own, so they can be released like any other.
  //  - invalid_argument: `alignment` is not a power of two, or the slot could never fit, not even
  //    in an empty ring (the message names both sizes);
  //  - resource_exhausted: it does not fit now; release slots and retry.
  Result<RingSlot> allocate(uint64_t length, uint64_t alignment = kDefaultAlignment);

  // Gives back a slot handed out by allocate(). Slots may come back in any order; their space is
  // reused once every slot allocated before them has come back too (the ring's tail only moves
  // over a released prefix). invalid_argument, with nothing changed, for an offset that is not
  // the start of a live slot (never allocated, already released) or a length that differs.
  Status release(uint64_t offset, uint64_t length);
  Status release(const RingSlot& slot) { return release(slot.offset, slot.length); }

  // The peer restarted: every live slot is dropped at once and the whole region is free again.
  // Anything still pointing into the ring is stale after this.
  void reset();

  // Bytes not available to allocate(): live slots plus the alignment padding, skipped tail ends
  // and released slots still held behind an older live one. 0 exactly when live_count() is 0.
  uint64_t bytes_in_use() const { return used_; }
  // Slots handed out and not yet released.
  uint64_t live_count() const { return live_.size(); }

  uint64_t base_offset() const { return base_; }
  uint64_t size() const { return size_; }

 private:
  ShmRing(uint64_t base_offset, uint64_t size) : base_(base_offset), size_(size) {}

  // One reservation, in allocation order. Its span runs from the previous reservation's end (the
  // ring's head when it was made) and includes alignment padding and a skipped tail end, so the
  // spans of all reservations laid end to end cover exactly used_ bytes starting at the tail.
  struct Reservation {
    uint64_t span = 0;
    bool released = false;
  };
  struct Live {
    uint64_t sequence = 0;  // index into order_ is sequence - first_sequence_
    uint64_t length = 0;
  };

  void drop_released_prefix();

  uint64_t base_;
  uint64_t size_;
  uint64_t head_ = 0;              // ring position (0..size_) where the next reservation starts
  uint64_t used_ = 0;              // bytes reserved from the tail up to head_, <= size_
  uint64_t first_sequence_ = 0;    // sequence number of order_.front()
  std::deque<Reservation> order_;  // reservations in allocation order, released or not
  // Live (unreleased) slots by arena offset. Live slots never overlap, and a slot of length 0
  // still reserves one byte, so these offsets are unique.
  std::map<uint64_t, Live> live_;
};

}  // namespace pio::ipc
