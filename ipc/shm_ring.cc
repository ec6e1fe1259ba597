#include "pio/ipc/shm_ring.h"

#include <fmt/format.h>

#include <algorithm>

namespace pio::ipc {
namespace {

// Bytes to add to `position` to reach a multiple of `alignment` (a power of two).
uint64_t padding_to(uint64_t position, uint64_t alignment) {
  return (alignment - (position & (alignment - 1))) & (alignment - 1);
}

}  // namespace

Result<ShmRing> ShmRing::create(uint64_t base_offset, uint64_t size) {
  if (size == 0) return invalid_argument_error("shm ring: size is 0; a ring needs at least 1 byte");
  if (size > kMaxSize) {
    return invalid_argument_error(
        fmt::format("shm ring: size {} is larger than the maximum {}", size, kMaxSize));
  }
  if (base_offset > UINT64_MAX - size) {
    return invalid_argument_error(fmt::format(
        "shm ring: base offset {} + size {} does not fit in 64 bits", base_offset, size));
  }
  return ShmRing(base_offset, size);
}

Result<RingSlot> ShmRing::allocate(uint64_t length, uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return invalid_argument_error(
        fmt::format("shm ring: alignment {} is not a power of two", alignment));
  }
  // An empty slot still takes a byte so that its offset belongs to it alone.
  const uint64_t reserve = std::max<uint64_t>(length, 1);
  // Where a slot starts when it begins a lap: the ring's first aligned byte.
  const uint64_t first_pad = padding_to(base_, alignment);
  if (reserve > size_ || first_pad > size_ - reserve) {
    return invalid_argument_error(fmt::format(
        "shm ring: a slot of {} bytes (aligned to {}) can never fit in a ring of {} bytes; "
        "send it in pieces or make the arena larger",
        length, alignment, size_));
  }

  // With nothing live the position is free to choose: start over at the beginning, so that a slot
  // as large as the whole ring always fits into an empty one.
  if (order_.empty()) head_ = 0;

  uint64_t start = 0;  // ring position of the slot
  uint64_t span = 0;   // bytes this reservation takes from the free space
  const uint64_t pad = padding_to(base_ + head_, alignment);
  const uint64_t to_end = size_ - head_;
  if (pad <= to_end && reserve <= to_end - pad) {
    start = head_ + pad;
    span = pad + reserve;
  } else {
    // Not contiguous before the end: skip the tail end and begin the next lap.
    start = first_pad;
    span = to_end + first_pad + reserve;  // each term <= size_ <= kMaxSize: no overflow
  }
  if (span > size_ - used_) {
    return resource_exhausted_error(fmt::format(
        "shm ring: no room for {} bytes ({} of {} bytes held by {} unreleased slots); retry "
        "after the consumer releases slots",
        length, used_, size_, live_.size()));
  }

  const uint64_t sequence = first_sequence_ + order_.size();
  const RingSlot slot{base_ + start, length};
  order_.push_back(Reservation{span, false});
  live_.emplace(slot.offset, Live{sequence, length});
  used_ += span;
  head_ = start + reserve;
  if (head_ == size_) head_ = 0;
  return slot;
}

Status ShmRing::release(uint64_t offset, uint64_t length) {
  const auto it = live_.find(offset);
  if (it == live_.end()) {
    return invalid_argument_error(fmt::format(
        "shm ring: release of offset {} ({} bytes): no live slot starts there (never allocated, "
        "or already released); ring is arena bytes [{}, {})",
        offset, length, base_, base_ + size_));
  }
  if (it->second.length != length) {
    return invalid_argument_error(
        fmt::format("shm ring: release of offset {} says {} bytes, but the slot there has {} bytes",
                    offset, length, it->second.length));
  }
  const uint64_t index = it->second.sequence - first_sequence_;
  PIO_CHECK(index < order_.size() && !order_[index].released);
  order_[index].released = true;
  live_.erase(it);
  drop_released_prefix();
  return ok_status();
}

void ShmRing::drop_released_prefix() {
  while (!order_.empty() && order_.front().released) {
    used_ -= order_.front().span;
    order_.pop_front();
    ++first_sequence_;
  }
  PIO_CHECK(!order_.empty() || used_ == 0);
}

void ShmRing::reset() {
  first_sequence_ += order_.size();
  order_.clear();
  live_.clear();
  used_ = 0;
  head_ = 0;
}

}  // namespace pio::ipc
