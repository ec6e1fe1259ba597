#pragma once
// The layers of the Qwen3 decoder as libtorch functions, each computing in the dtypes the
// reference implementation (transformers' modeling_qwen3.py) uses, so that results match it to
// rounding. Includes libtorch: library sources only.

#include <ATen/ATen.h>

#include <cstdint>

namespace pio::runtime::layers {

// weight * (x normalised in fp32, cast back to x's dtype); over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// 1 / theta^(2i/d), i < d/2, in fp32.
at::Tensor rope_inverse_frequencies(int64_t head_dim, double theta);

// The rotation for `positions` (int64 [T]): cos and sin as [T, 1, head_dim] in `dtype`, computed
// in fp32 and then cast, as the reference does. Computed once per forward, shared by all layers.
struct Rotary {
  at::Tensor cos;
  at::Tensor sin;
};
Rotary rotary_for(const at::Tensor& positions, const at::Tensor& inverse_frequencies,
                  at::ScalarType dtype);

// x * cos + rotate_half(x) * sin for x [T, heads, head_dim] (the half-split layout).
at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary);

// Grouped-query attention of queries [T, heads, d] at positions first_position.. over keys and
// values [kv_heads, L, d] (positions 0..L-1), causal; scores in the activation dtype, softmax in
// fp32. Returns [T, heads * d].
at::Tensor attention(const at::Tensor& queries, const at::Tensor& keys, const at::Tensor& values,
                     int64_t first_position);

}  // namespace pio::runtime::layers
