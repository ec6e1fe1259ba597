#pragma once
// KvCache: the keys and values of one sequence's tokens for every layer, so that decoding a token
// attends to the earlier ones without recomputing them.
//
// Today one contiguous block per layer, allocated for `capacity` tokens when the cache is made
// (pages are touched only as tokens arrive). The model reads and writes it only through the
// storage interface in internal/kv_cache_storage.h (write positions, read the first n), which is
// what a paged cache would implement too.
//
// What a caller gets wrong: a cache belongs to the model that made it (its layer count, heads and
// dtype); and length() counts tokens whose keys are stored, which is the next position to run.

#include <cstdint>
#include <memory>

namespace pio::runtime {

class KvCacheStorage;

class KvCache {
 public:
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;
  ~KvCache();

  int64_t length() const;
  int64_t capacity() const;
  // Forgets the tokens from `length` on (clamped to the current length).
  void truncate(int64_t length);

 private:
  friend class Qwen3Model;
  explicit KvCache(std::unique_ptr<KvCacheStorage> storage);
  KvCacheStorage& storage() { return *storage_; }
  const KvCacheStorage& storage() const { return *storage_; }

  std::unique_ptr<KvCacheStorage> storage_;
};

}  // namespace pio::runtime
