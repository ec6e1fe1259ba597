#include "pio/kernels/gemm_bf16.h"

#include <algorithm>

#include "internal/gemm_rows.h"
#include "pio/ipc/check.h"
#include "pio/kernels/bf16.h"

namespace pio::kernels {
namespace internal {

void gemm_rows_portable(const uint16_t* weight, int64_t cols, const uint16_t* x, int64_t tokens,
                        float* out, int64_t out_stride, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const uint16_t* row = weight + r * cols;
    for (int64_t t = 0; t < tokens; ++t) {
      const uint16_t* xt = x + t * cols;
      float sum = 0.0f;
      for (int64_t c = 0; c < cols; ++c) sum += bf16_to_float(row[c]) * bf16_to_float(xt[c]);
      out[t * out_stride + r] = sum;
    }
  }
}

}  // namespace internal

void gemm_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const uint16_t* x,
               int64_t tokens, int64_t out_stride, ThreadPool* pool, GemvIsa isa) {
  PIO_CHECK(cols >= 0 && tokens >= 0);
  int64_t total = 0;
  for (const GemvMatrix& m : matrices) {
    PIO_CHECK(m.rows >= 0 && m.rows <= out_stride);
    total += m.rows;
  }
  const bool avx512 = isa == GemvIsa::kAvx512Bf16;
  PIO_CHECK(!avx512 || best_gemv_isa() == GemvIsa::kAvx512Bf16);
  // The rows of all matrices are numbered one after another, as in gemv_bf16.
  auto rows = [&](int64_t begin, int64_t end) {
    int64_t first = 0;
    for (const GemvMatrix& m : matrices) {
      const int64_t lo = std::max(begin, first) - first;
      const int64_t hi = std::min(end, first + m.rows) - first;
      if (lo < hi) {
        if (avx512) {
          internal::gemm_rows_avx512(m.weight, cols, x, tokens, m.out, out_stride, lo, hi);
        } else {
          internal::gemm_rows_portable(m.weight, cols, x, tokens, m.out, out_stride, lo, hi);
        }
      }
      first += m.rows;
    }
  };
  if (pool == nullptr || tokens == 0) {
    rows(0, total);
    return;
  }
  // A chunk does rows x tokens x cols multiply-adds: about 2^22 of them keeps claiming cheap and
  // leaves enough chunks for a late thread's share to be taken over. Multiples of 4 rows keep the
  // kernel's blocks whole.
  const int64_t per_row = std::max<int64_t>(1, cols * tokens);
  const int64_t grain = std::max<int64_t>(4, (int64_t{1} << 22) / per_row / 4 * 4);
  pool->parallel_for(total, grain, rows);
}

}  // namespace pio::kernels
