#include "pio/runtime/kv_cache.h"

#include <algorithm>

#include "internal/kv_cache_storage.h"

namespace pio::runtime {

KvCacheStorage::KvCacheStorage(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity,
                               at::ScalarType dtype, const void* owner)
    : capacity_(capacity), owner_(owner) {
  const auto options = at::TensorOptions().dtype(dtype);
  for (int64_t i = 0; i < layers; ++i) {
    keys_.push_back(at::empty({kv_heads, capacity, head_dim}, options));
    values_.push_back(at::empty({kv_heads, capacity, head_dim}, options));
  }
}

void KvCacheStorage::write(int64_t layer, int64_t start, const at::Tensor& keys,
                           const at::Tensor& values) {
  const int64_t tokens = keys.size(0);
  keys_[static_cast<size_t>(layer)].narrow(1, start, tokens).copy_(keys.transpose(0, 1));
  values_[static_cast<size_t>(layer)].narrow(1, start, tokens).copy_(values.transpose(0, 1));
}

at::Tensor KvCacheStorage::keys(int64_t layer, int64_t count) const {
  return keys_[static_cast<size_t>(layer)].narrow(1, 0, count);
}

at::Tensor KvCacheStorage::values(int64_t layer, int64_t count) const {
  return values_[static_cast<size_t>(layer)].narrow(1, 0, count);
}

KvCache::KvCache(std::unique_ptr<KvCacheStorage> storage) : storage_(std::move(storage)) {}
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;
KvCache::~KvCache() = default;

int64_t KvCache::length() const { return storage_->length(); }
int64_t KvCache::capacity() const { return storage_->capacity(); }

void KvCache::truncate(int64_t length) {
  storage_->set_length(std::clamp<int64_t>(length, 0, storage_->length()));
}

}  // namespace pio::runtime
