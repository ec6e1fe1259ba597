#include "pio/ipc/shm_ring.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace pio::ipc {
namespace {

using ::testing::HasSubstr;

ShmRing make_ring(uint64_t base, uint64_t size) {
  auto ring = ShmRing::create(base, size);
  EXPECT_TRUE(ring.ok()) << ring.status().to_string();
  return std::move(ring).value();
}

// A real buffer standing for the arena, so slots are written and read back, not just counted.
class Arena {
 public:
  explicit Arena(uint64_t size) : bytes_(size, std::byte{0}) {}

  void fill(const RingSlot& slot, uint32_t seed) {
    ASSERT_LE(slot.offset + slot.length, bytes_.size());
    for (uint64_t i = 0; i < slot.length; ++i) bytes_[slot.offset + i] = pattern(seed, i);
  }
  bool intact(const RingSlot& slot, uint32_t seed) const {
    for (uint64_t i = 0; i < slot.length; ++i) {
      if (bytes_[slot.offset + i] != pattern(seed, i)) return false;
    }
    return true;
  }

 private:
  static std::byte pattern(uint32_t seed, uint64_t i) {
    return static_cast<std::byte>((seed * 131u + i * 7u + (i >> 8)) & 0xff);
  }
  std::vector<std::byte> bytes_;
};

TEST(ShmRing, CreateRejectsAnEmptyOrOverflowingRegion) {
  EXPECT_EQ(ShmRing::create(0, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::create(UINT64_MAX - 10, 100).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ShmRing::create(0, ShmRing::kMaxSize + 1).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(ShmRing::create(4096, 4096).ok());
}

TEST(ShmRing, SlotsAreAlignedArenaOffsetsInsideTheRegion) {
  // The region starts at an unaligned arena offset: alignment is of the arena offset.
  ShmRing ring = make_ring(1000, 4096);
  auto a = ring.allocate(10);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->offset, 1024u);
  EXPECT_EQ(a->length, 10u);
  auto b = ring.allocate(3, 256);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->offset % 256, 0u);
  EXPECT_GE(b->offset, a->offset + a->length);
  auto c = ring.allocate(5, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->offset, b->offset + 3);
  EXPECT_EQ(ring.live_count(), 3u);
  EXPECT_EQ(ring.bytes_in_use(), c->offset + 5 - 1000);
}

TEST(ShmRing, BadAlignmentIsRejected) {
  ShmRing ring = make_ring(0, 4096);
  EXPECT_EQ(ring.allocate(8, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(ring.allocate(8, 48).status().message(), HasSubstr("48 is not a power of two"));
  EXPECT_EQ(ring.live_count(), 0u);
}

TEST(ShmRing, SlotLargerThanTheRingIsRejectedNamingBothSizes) {
  ShmRing ring = make_ring(0, 4096);
  auto r = ring.allocate(5000);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("5000"));
  EXPECT_THAT(r.status().message(), HasSubstr("4096"));
  // Fits by size, but not once the unaligned start of the region is padded.
  ShmRing unaligned = make_ring(8, 4096);
  EXPECT_EQ(unaligned.allocate(4096, 64).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(unaligned.allocate(4096, 8).ok());
}

TEST(ShmRing, SlotAsLargeAsTheRingFitsWhenTheRingIsEmpty) {
  ShmRing ring = make_ring(0, 4096);
  auto a = ring.allocate(100);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(ring.release(*a).ok());
  // The head was in the middle; an empty ring starts over so the whole region is one slot.
  auto whole = ring.allocate(4096);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_EQ(whole->offset, 0u);
  EXPECT_EQ(ring.bytes_in_use(), 4096u);
  EXPECT_EQ(ring.allocate(0).status().code(), ErrorCode::kResourceExhausted);
}

TEST(ShmRing, WrapsAroundWhenTheSlotDoesNotFitBeforeTheEnd) {
  Arena arena(8192);
  ShmRing ring = make_ring(4096, 1024);
  auto a = ring.allocate(400);
  auto b = ring.allocate(400);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->offset, 4096u);
  EXPECT_EQ(b->offset, 4096u + 448);
  arena.fill(*a, 1);
  arena.fill(*b, 2);
  ASSERT_TRUE(ring.release(*a).ok());
  // 1024 - 848 = 176 bytes left before the end: a 300-byte slot skips them and starts the next lap.
  auto c = ring.allocate(300);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->offset, 4096u);
  arena.fill(*c, 3);
  EXPECT_TRUE(arena.intact(*b, 2));
  EXPECT_TRUE(arena.intact(*c, 3));
  // Free now: from c's end (300, aligned to 320) up to where b's reservation begins, which is
  // where a ended (400): b's alignment padding belongs to b. So 80 bytes fit and fill the ring.
  auto d = ring.allocate(80);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->offset, 4096u + 320);
  EXPECT_EQ(ring.allocate(1).status().code(), ErrorCode::kResourceExhausted);
  arena.fill(*d, 4);
  EXPECT_TRUE(arena.intact(*b, 2));
  EXPECT_TRUE(arena.intact(*c, 3));
  EXPECT_TRUE(arena.intact(*d, 4));
}

TEST(ShmRing, AllocateOnFullRingReturnsResourceExhaustedAndSucceedsAfterARelease) {
  Arena arena(4096);
  ShmRing ring = make_ring(0, 4096);
  std::vector<RingSlot> slots;
  for (uint32_t i = 0; i < 4; ++i) {
    auto s = ring.allocate(1024);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    arena.fill(*s, i);
    slots.push_back(*s);
  }
  auto full = ring.allocate(1);
  EXPECT_EQ(full.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("retry"));
  EXPECT_EQ(ring.live_count(), 4u);
  EXPECT_EQ(ring.bytes_in_use(), 4096u);

  ASSERT_TRUE(ring.release(slots[0]).ok());
  auto again = ring.allocate(1024);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->offset, 0u);
  arena.fill(*again, 99);
  for (uint32_t i = 1; i < 4; ++i) EXPECT_TRUE(arena.intact(slots[i], i)) << "slot " << i;
  EXPECT_TRUE(arena.intact(*again, 99));
}

TEST(ShmRing, OutOfOrderReleaseReclaimsSpaceOnlyOnceTheOlderSlotsAreBack) {
  ShmRing ring = make_ring(0, 4096);
  auto a = ring.allocate(1024);
  auto b = ring.allocate(1024);
  auto c = ring.allocate(1024);
  auto d = ring.allocate(1024);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  ASSERT_TRUE(ring.release(*c).ok());
  ASSERT_TRUE(ring.release(*b).ok());
  EXPECT_EQ(ring.live_count(), 2u);
  // b and c are released but sit behind a: their space is not reusable yet.
  EXPECT_EQ(ring.bytes_in_use(), 4096u);
  EXPECT_EQ(ring.allocate(1).status().code(), ErrorCode::kResourceExhausted);
  ASSERT_TRUE(ring.release(*a).ok());
  EXPECT_EQ(ring.bytes_in_use(), 1024u);
  auto e = ring.allocate(3072);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->offset, 0u);
}

TEST(ShmRing, DoubleAndForeignReleasesAreRejectedAndChangeNothing) {
  ShmRing ring = make_ring(0, 4096);
  auto a = ring.allocate(100);
  auto b = ring.allocate(200);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(ring.release(*a).ok());
  const uint64_t used = ring.bytes_in_use();

  auto twice = ring.release(*a);
  EXPECT_EQ(twice.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(twice.message(), HasSubstr("no live slot"));
  EXPECT_EQ(ring.release(b->offset + 1, 199).code(), ErrorCode::kInvalidArgument);  // mid-slot
  EXPECT_EQ(ring.release(UINT64_MAX, UINT64_MAX).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ring.release(9999, 1).code(), ErrorCode::kInvalidArgument);
  auto wrong_length = ring.release(b->offset, 201);
  EXPECT_EQ(wrong_length.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(wrong_length.message(), HasSubstr("200"));

  EXPECT_EQ(ring.live_count(), 1u);
  EXPECT_EQ(ring.bytes_in_use(), used);
  ASSERT_TRUE(ring.release(*b).ok());
  EXPECT_EQ(ring.live_count(), 0u);
  EXPECT_EQ(ring.bytes_in_use(), 0u);
  EXPECT_TRUE(ring.allocate(4096).ok());
}

TEST(ShmRing, ZeroLengthSlotsGetOffsetsOfTheirOwn) {
  ShmRing ring = make_ring(0, 256);
  auto a = ring.allocate(0, 1);
  auto b = ring.allocate(0, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->offset, b->offset);
  ASSERT_TRUE(ring.release(*b).ok());
  ASSERT_TRUE(ring.release(*a).ok());
  EXPECT_EQ(ring.release(*a).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ring.bytes_in_use(), 0u);
}

TEST(ShmRing, ResetDropsEveryLiveSlot) {
  ShmRing ring = make_ring(0, 4096);
  auto a = ring.allocate(1000);
  auto b = ring.allocate(3000);
  ASSERT_TRUE(a.ok() && b.ok());
  ring.reset();
  EXPECT_EQ(ring.live_count(), 0u);
  EXPECT_EQ(ring.bytes_in_use(), 0u);
  // Slots from before the restart are no longer the ring's.
  EXPECT_EQ(ring.release(*a).code(), ErrorCode::kInvalidArgument);
  auto whole = ring.allocate(4096);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->offset, 0u);
}

// An independent formulation of the same policy: positions that only grow (byte p of the ring is
// p % size), the tail at the start of the oldest unreleased-or-held reservation.
class RingModel {
 public:
  RingModel(uint64_t base, uint64_t size) : base_(base), size_(size) {}

  // The offset the ring must return, or nullopt when it must say resource_exhausted.
  std::optional<uint64_t> allocate(uint64_t length, uint64_t alignment) {
    if (held_.empty()) head_ = tail_ = (head_ + size_ - 1) / size_ * size_;
    const uint64_t reserve = std::max<uint64_t>(length, 1);
    auto aligned = [&](uint64_t pos) {
      const uint64_t abs = base_ + pos % size_;
      return pos + (abs + alignment - 1) / alignment * alignment - abs;
    };
    uint64_t start = aligned(head_);
    if (start % size_ + reserve > size_ || start / size_ != head_ / size_) {
      start = aligned((head_ / size_ + 1) * size_);
    }
    if (start + reserve - tail_ > size_) return std::nullopt;
    held_.push_back({head_, start, reserve, length, false});
    head_ = start + reserve;
    return base_ + start % size_;
  }

  void release(uint64_t offset) {
    for (auto& h : held_) {
      if (!h.released && base_ + h.start % size_ == offset) h.released = true;
    }
    while (!held_.empty() && held_.front().released) held_.erase(held_.begin());
    tail_ = held_.empty() ? head_ : held_.front().begin;
  }

  uint64_t used() const { return head_ - tail_; }

 private:
  struct Held {
    uint64_t begin, start, reserve, length;
    bool released;
  };
  uint64_t base_, size_;
  uint64_t head_ = 0, tail_ = 0;
  std::vector<Held> held_;
};

TEST(ShmRing, RandomSequencesMatchASimpleModelAndKeepDataIntact) {
  constexpr uint64_t kBase = 3000;  // unaligned on purpose
  constexpr uint64_t kSize = 8192;
  std::mt19937_64 rng(20261122);
  int exhausted = 0;
  int wraps = 0;
  for (int round = 0; round < 40; ++round) {
    Arena arena(kBase + kSize);
    ShmRing ring = make_ring(kBase, kSize);
    RingModel model(kBase, kSize);
    std::map<uint64_t, std::pair<RingSlot, uint32_t>> live;  // offset -> (slot, pattern seed)
    uint32_t next_seed = 1;
    uint64_t last_offset = 0;
    for (int step = 0; step < 2000; ++step) {
      const bool do_allocate = live.empty() || rng() % 100 < 55;
      if (do_allocate) {
        const uint64_t lengths[] = {0, 1, 7, 64, 100, 1000, 3000};
        const uint64_t alignments[] = {1, 8, 64, 256};
        const uint64_t length = rng() % 4 == 0 ? lengths[rng() % std::size(lengths)] : rng() % 2500;
        const uint64_t alignment = alignments[rng() % std::size(alignments)];
        const auto expected = model.allocate(length, alignment);
        auto slot = ring.allocate(length, alignment);
        if (!expected) {
          ASSERT_EQ(slot.status().code(), ErrorCode::kResourceExhausted)
              << "round " << round << " step " << step << ": " << slot.status().to_string();
          ++exhausted;
          continue;
        }
        ASSERT_TRUE(slot.ok()) << "round " << round << " step " << step << ": "
                               << slot.status().to_string();
        ASSERT_EQ(slot->offset, *expected) << "round " << round << " step " << step;
        ASSERT_EQ(slot->length, length);
        ASSERT_EQ(slot->offset % alignment, 0u);
        ASSERT_GE(slot->offset, kBase);
        ASSERT_LE(slot->offset + std::max<uint64_t>(length, 1), kBase + kSize);
        // No overlap with any live slot (checked directly, not through the model).
        for (const auto& [off, entry] : live) {
          const RingSlot& other = entry.first;
          const bool disjoint =
              slot->offset >= other.offset + std::max<uint64_t>(other.length, 1) ||
              other.offset >= slot->offset + std::max<uint64_t>(length, 1);
          ASSERT_TRUE(disjoint) << "round " << round << " step " << step;
        }
        if (slot->offset < last_offset) ++wraps;
        last_offset = slot->offset;
        arena.fill(*slot, next_seed);
        live.emplace(slot->offset, std::make_pair(*slot, next_seed++));
      } else {
        auto it = live.begin();
        std::advance(it, static_cast<long>(rng() % live.size()));
        const auto [slot, seed] = it->second;
        ASSERT_TRUE(arena.intact(slot, seed)) << "round " << round << " step " << step;
        if (rng() % 10 == 0) {
          // A lying peer in between: wrong length, then an offset inside the slot.
          ASSERT_EQ(ring.release(slot.offset, slot.length + 1).code(), ErrorCode::kInvalidArgument);
          if (slot.length > 1) {
            ASSERT_EQ(ring.release(slot.offset + 1, slot.length - 1).code(),
                      ErrorCode::kInvalidArgument);
          }
        }
        ASSERT_TRUE(ring.release(slot).ok()) << ring.release(slot).to_string();
        ASSERT_EQ(ring.release(slot).code(), ErrorCode::kInvalidArgument);  // double release
        model.release(slot.offset);
        live.erase(it);
      }
      ASSERT_EQ(ring.live_count(), live.size());
      ASSERT_EQ(ring.bytes_in_use(), model.used()) << "round " << round << " step " << step;
    }
    for (const auto& [off, entry] : live) ASSERT_TRUE(arena.intact(entry.first, entry.second));
  }
  // The sequences really drove the ring into the cases that matter.
  EXPECT_GT(exhausted, 1000);
  EXPECT_GT(wraps, 1000);
}

}  // namespace
}  // namespace pio::ipc
