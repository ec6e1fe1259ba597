#include "internal/torch_layers.h"

#include <cmath>
#include <limits>

namespace pio::runtime::layers {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(variance + eps);
  return weight * xf.to(x.scalar_type());
}

at::Tensor rope_inverse_frequencies(int64_t head_dim, double theta) {
  const at::Tensor exponents =
      at::arange(0, head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
      static_cast<double>(head_dim);
  return at::reciprocal(at::pow(theta, exponents));
}

Rotary rotary_for(const at::Tensor& positions, const at::Tensor& inverse_frequencies,
                  at::ScalarType dtype) {
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(1) * inverse_frequencies.unsqueeze(0);
  const at::Tensor angles = at::cat({freqs, freqs}, -1).unsqueeze(1);
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * rotary.cos + rotated * rotary.sin;
}

at::Tensor attention(const at::Tensor& queries, const at::Tensor& keys, const at::Tensor& values,
                     int64_t first_position) {
  const int64_t tokens = queries.size(0);
  const int64_t heads = queries.size(1);
  const int64_t dim = queries.size(2);
  const int64_t kv_heads = keys.size(0);
  const int64_t length = keys.size(1);
  const int64_t group = heads / kv_heads;
  // Query head h uses kv head h / group: view the heads as [kv_heads, group] and fold the group
  // into the rows of one matrix product per kv head.
  const at::Tensor q = queries.permute({1, 0, 2}).reshape({kv_heads, group * tokens, dim});
  at::Tensor scores =
      at::bmm(q, keys.transpose(1, 2)) * (1.0 / std::sqrt(static_cast<double>(dim)));
  if (tokens > 1) {
    // Query t sits at position first_position + t and sees keys up to there.
    const at::Tensor query_pos =
        at::arange(first_position, first_position + tokens, at::TensorOptions().dtype(at::kLong));
    const at::Tensor key_pos = at::arange(0, length, at::TensorOptions().dtype(at::kLong));
    const at::Tensor hidden = key_pos.unsqueeze(0) > query_pos.unsqueeze(1);  // [T, L]
    scores = scores.view({kv_heads, group, tokens, length})
                 .masked_fill(hidden, -std::numeric_limits<double>::infinity())
                 .view({kv_heads, group * tokens, length});
  }
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(queries.scalar_type());
  const at::Tensor out = at::bmm(probs, values);  // [kv_heads, group * T, dim]
  return out.view({heads, tokens, dim}).permute({1, 0, 2}).reshape({tokens, heads * dim});
}

}  // namespace pio::runtime::layers
