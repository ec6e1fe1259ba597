#pragma once
// KvCacheStorage: where a KvCache keeps its tensors. The forward pass writes a run of positions
// and reads the first n positions back; that is the whole interface, so a paged store (blocks
// from a shared pool, gathered on read) can replace this contiguous one without touching the
// model. Includes libtorch: library sources only.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace pio::runtime {

class KvCacheStorage {
 public:
  // Per layer, keys and values as [kv_heads, capacity, head_dim] of `dtype`.
  KvCacheStorage(int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t capacity,
                 at::ScalarType dtype, const void* owner);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Which model made it (checked by forward()).
  const void* owner() const { return owner_; }

  // Stores keys and values [tokens, kv_heads, head_dim] of `layer` at positions start.. .
  void write(int64_t layer, int64_t start, const at::Tensor& keys, const at::Tensor& values);
  // The first `count` positions of `layer`, as [kv_heads, count, head_dim] views.
  at::Tensor keys(int64_t layer, int64_t count) const;
  at::Tensor values(int64_t layer, int64_t count) const;

  void set_length(int64_t length) { length_ = length; }

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
  int64_t capacity_;
  int64_t length_ = 0;
  const void* owner_;
};

}  // namespace pio::runtime
