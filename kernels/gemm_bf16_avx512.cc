// The AVX-512 loops of gemm_bf16. This file alone (with gemv_bf16_avx512.cc) is compiled with
// -mavx512bf16; nothing in it may run before gemm_bf16.cc has checked the CPU has it.

#include <immintrin.h>

#include "internal/gemm_rows.h"

namespace pio::kernels::internal {
namespace {

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }

inline float sum_lanes(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_cvtss_f32(v);
}

// R rows (1..4) against T tokens (1..2): R x T accumulators, each step loads R weight vectors and
// T x vectors for R x T vdpbf16ps (32 bf16 products each, exact, summed in fp32).
template <int R, int T>
inline void block(const uint16_t* w, int64_t cols, const uint16_t* x, float* out,
                  int64_t out_stride, int64_t full, __mmask32 tail_mask) {
  __m512 acc[R][T];
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < full; c += 32) {
    __m512bh xv[T];
    for (int j = 0; j < T; ++j) xv[j] = as_bh(_mm512_loadu_si512(x + j * cols + c));
    for (int i = 0; i < R; ++i) {
      const __m512bh wv = as_bh(_mm512_loadu_si512(w + i * cols + c));
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
  if (tail_mask != 0) {
    __m512bh xv[T];
    for (int j = 0; j < T; ++j) {
      xv[j] = as_bh(_mm512_maskz_loadu_epi16(tail_mask, x + j * cols + full));
    }
    for (int i = 0; i < R; ++i) {
      const __m512bh wv = as_bh(_mm512_maskz_loadu_epi16(tail_mask, w + i * cols + full));
      for (int j = 0; j < T; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < T; ++j) out[j * out_stride + i] = sum_lanes(acc[i][j]);
  }
}

template <int R>
inline void rows_against_tokens(const uint16_t* w, int64_t cols, const uint16_t* x, int64_t tokens,
                                float* out, int64_t out_stride, int64_t full, __mmask32 tail_mask) {
  int64_t t = 0;
  for (; t + 2 <= tokens; t += 2) {
    block<R, 2>(w, cols, x + t * cols, out + t * out_stride, out_stride, full, tail_mask);
  }
  if (t < tokens) {
    block<R, 1>(w, cols, x + t * cols, out + t * out_stride, out_stride, full, tail_mask);
  }
}

}  // namespace

void gemm_rows_avx512(const uint16_t* weight, int64_t cols, const uint16_t* x, int64_t tokens,
                      float* out, int64_t out_stride, int64_t begin, int64_t end) {
  const int64_t full = cols / 32 * 32;
  const int64_t tail = cols - full;
  const __mmask32 tail_mask = tail == 0 ? 0 : static_cast<__mmask32>((uint64_t{1} << tail) - 1);
  int64_t r = begin;
  for (; r + 4 <= end; r += 4) {
    rows_against_tokens<4>(weight + r * cols, cols, x, tokens, out + r, out_stride, full,
                           tail_mask);
  }
  for (; r < end; ++r) {
    rows_against_tokens<1>(weight + r * cols, cols, x, tokens, out + r, out_stride, full,
                           tail_mask);
  }
}

}  // namespace pio::kernels::internal
