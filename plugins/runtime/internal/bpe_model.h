#pragma once
// The BPE model of a tokenizer.json: a vocab (token text -> id) and ranked merges, applied to one
// pre-tokenized piece at a time ("word"). Works on byte-level text: each input byte is first
// looked up as the one-code-point token of the byte-level alphabet.

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "internal/byte_level.h"
#include "pio/ipc/status.h"

namespace pio::runtime::internal {

class BpeModel {
 public:
  // `vocab` maps token text to id; `merges` are (left, right) pairs in rank order. Every merge's
  // parts and result must be in the vocab.
  static Result<BpeModel> create(std::unordered_map<std::string, int32_t> vocab,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 bool ignore_merges);

  BpeModel(BpeModel&& other) noexcept;
  BpeModel& operator=(BpeModel&&) = delete;
  BpeModel(const BpeModel&) = delete;

  // Appends the ids of one piece of raw bytes. Bytes whose alphabet token is missing from the
  // vocab are dropped, as the reference implementation does when there is no unknown token.
  // Thread-safe (the word cache is guarded).
  void encode_word(std::string_view raw_bytes, std::vector<int32_t>& ids) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  const ByteLevelAlphabet& alphabet() const { return alphabet_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  BpeModel(std::unordered_map<std::string, int32_t> vocab, bool ignore_merges);
  void merge_word(std::string_view raw_bytes, std::vector<int32_t>& ids) const;

  ByteLevelAlphabet alphabet_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};  // -1 where the byte's token is not in the vocab
  bool ignore_merges_;

  // Words seen before, with their ids. Bounded: cleared when full (prompts repeat a small set).
  static constexpr size_t kCacheCapacity = 16384;
  static constexpr size_t kMaxCachedWordBytes = 64;
  mutable std::mutex cache_mutex_;
  struct StringHash {
    using is_transparent = void;  // lets the cache be probed with a string_view, no copy
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace pio::runtime::internal
