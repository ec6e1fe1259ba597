#include "internal/torch_layers.h"

#include <cmath>
#include <limits>

namespace pio::runtime::layers {

namespace {

// Element access in fp32 for the two activation dtypes, and the rounding back to them: the
// loops below round where libtorch's op-by-op version rounds, so both give the same numbers up
// to the order of an fp32 sum.
template <typename T>
float f32(T v) {
  return static_cast<float>(v);
}
template <typename T>
T round_to(float v) {
  return static_cast<T>(v);
}

template <typename T>
void rms_norm_rows(const T* x, const T* weight, T* out, int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * dim;
    double squares = 0;
    for (int64_t i = 0; i < dim; ++i) squares += static_cast<double>(f32(row[i])) * f32(row[i]);
    const float variance = static_cast<float>(squares / static_cast<double>(dim));
    const float scale = 1.0f / std::sqrt(variance + eps);
    for (int64_t i = 0; i < dim; ++i) {
      const T normed = round_to<T>(f32(row[i]) * scale);
      out[r * dim + i] = round_to<T>(f32(weight[i]) * f32(normed));
    }
  }
}

template <typename T>
void rotate_rows(const T* x, const T* cos, const T* sin, T* out, int64_t tokens, int64_t heads,
                 int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t t = 0; t < tokens; ++t) {
    const T* c = cos + t * dim;
    const T* s = sin + t * dim;
    for (int64_t h = 0; h < heads; ++h) {
      const T* row = x + (t * heads + h) * dim;
      T* o = out + (t * heads + h) * dim;
      for (int64_t i = 0; i < dim; ++i) {
        const float rotated = i < half ? -f32(row[i + half]) : f32(row[i - half]);
        const T a = round_to<T>(f32(row[i]) * f32(c[i]));
        const T b = round_to<T>(rotated * f32(s[i]));
        o[i] = round_to<T>(f32(a) + f32(b));
      }
    }
  }
}

}  // namespace

// Written as loops rather than as libtorch ops: a decoded token runs this five times per layer,
// and the eight small ops it takes in libtorch cost more in dispatch than in arithmetic.
at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight, double eps) {
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty_like(x);
  const int64_t dim = x.size(-1);
  const int64_t rows = dim == 0 ? 0 : x.numel() / dim;
  const auto e = static_cast<float>(eps);
  if (x.scalar_type() == at::kFloat) {
    rms_norm_rows(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(), rows, dim,
                  e);
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "rms_norm: unsupported dtype");
    rms_norm_rows(x.data_ptr<at::BFloat16>(), weight.data_ptr<at::BFloat16>(),
                  out.data_ptr<at::BFloat16>(), rows, dim, e);
  }
  return out;
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

at::Tensor apply_rotary(const at::Tensor& x_in, const Rotary& rotary) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor cos = rotary.cos.contiguous();
  const at::Tensor sin = rotary.sin.contiguous();
  at::Tensor out = at::empty_like(x);
  const int64_t tokens = x.size(0), heads = x.size(1), dim = x.size(2);
  if (x.scalar_type() == at::kFloat) {
    rotate_rows(x.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(),
                out.data_ptr<float>(), tokens, heads, dim);
  } else {
    TORCH_CHECK(x.scalar_type() == at::kBFloat16, "apply_rotary: unsupported dtype");
    rotate_rows(x.data_ptr<at::BFloat16>(), cos.data_ptr<at::BFloat16>(),
                sin.data_ptr<at::BFloat16>(), out.data_ptr<at::BFloat16>(), tokens, heads, dim);
  }
  return out;
}

at::Tensor attention(const at::Tensor& queries, const at::Tensor& keys, const at::Tensor& values,
                     int64_t first_position) {
  const int64_t tokens = queries.size(0);
  const int64_t heads = queries.size(1);
  const int64_t dim = queries.size(2);
  const int64_t kv_heads = keys.size(0);
  const int64_t length = keys.size(1);
  const int64_t group = heads / kv_heads;
  // bf16 products run in fp32 (BLAS): libtorch's bf16 bmm is oneDNN's run-time generated code,
  // which a low-trust worker cannot run. Converting the cached keys and values costs a copy of
  // them per layer and token, small next to the weights at the context lengths served here.
  if (queries.scalar_type() != at::kFloat) {
    return attention(queries.to(at::kFloat), keys.to(at::kFloat), values.to(at::kFloat),
                     first_position)
        .to(queries.scalar_type());
  }
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
