// The AVX-512 row loops of gemv_bf16. This file alone is compiled with -mavx512bf16; nothing in
// it may run before gemv_bf16.cc has checked that the CPU has those instructions.

#include <immintrin.h>

#include "internal/gemv_rows.h"

namespace pio::kernels::internal {
namespace {

// Four rows at a time: x is loaded once per four rows, and four independent weight streams keep
// enough loads in flight to reach the memory bandwidth of one core.
constexpr int64_t kRowBlock = 4;

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh>(v); }

// 16 bf16 values to 16 floats (bf16 is the upper half of an fp32).
inline __m512 widen(__m256i bf16) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16));
}

// Sum of the 16 lanes. (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized.)
inline float sum_lanes(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // swap 256-bit halves
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));  // swap 128-bit quarters
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));        // swap 64-bit pairs
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));        // swap neighbours
  return _mm512_cvtss_f32(v);
}

}  // namespace

void gemv_rows_avx512(const uint16_t* weight, int64_t cols, const uint16_t* x, float* out,
                      int64_t begin, int64_t end) {
  // vdpbf16ps takes 32 bf16 (16 pairs) per step; products are exact and summed in fp32.
  const int64_t full = cols / 32 * 32;
  const int64_t tail = cols - full;
  const __mmask32 tail_mask = tail == 0 ? 0 : static_cast<__mmask32>((uint64_t{1} << tail) - 1);
  int64_t r = begin;
  for (; r + kRowBlock <= end; r += kRowBlock) {
    const uint16_t* w0 = weight + r * cols;
    const uint16_t* w1 = w0 + cols;
    const uint16_t* w2 = w1 + cols;
    const uint16_t* w3 = w2 + cols;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int64_t c = 0; c < full; c += 32) {
      const __m512bh xv = as_bh(_mm512_loadu_si512(x + c));
      a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_loadu_si512(w0 + c)), xv);
      a1 = _mm512_dpbf16_ps(a1, as_bh(_mm512_loadu_si512(w1 + c)), xv);
      a2 = _mm512_dpbf16_ps(a2, as_bh(_mm512_loadu_si512(w2 + c)), xv);
      a3 = _mm512_dpbf16_ps(a3, as_bh(_mm512_loadu_si512(w3 + c)), xv);
    }
    if (tail != 0) {
      const __m512bh xv = as_bh(_mm512_maskz_loadu_epi16(tail_mask, x + full));
      a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_maskz_loadu_epi16(tail_mask, w0 + full)), xv);
      a1 = _mm512_dpbf16_ps(a1, as_bh(_mm512_maskz_loadu_epi16(tail_mask, w1 + full)), xv);
      a2 = _mm512_dpbf16_ps(a2, as_bh(_mm512_maskz_loadu_epi16(tail_mask, w2 + full)), xv);
      a3 = _mm512_dpbf16_ps(a3, as_bh(_mm512_maskz_loadu_epi16(tail_mask, w3 + full)), xv);
    }
    out[r] = sum_lanes(a0);
    out[r + 1] = sum_lanes(a1);
    out[r + 2] = sum_lanes(a2);
    out[r + 3] = sum_lanes(a3);
  }
  for (; r < end; ++r) {
    const uint16_t* w0 = weight + r * cols;
    __m512 a0 = _mm512_setzero_ps();
    for (int64_t c = 0; c < full; c += 32) {
      a0 =
          _mm512_dpbf16_ps(a0, as_bh(_mm512_loadu_si512(w0 + c)), as_bh(_mm512_loadu_si512(x + c)));
    }
    if (tail != 0) {
      a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_maskz_loadu_epi16(tail_mask, w0 + full)),
                            as_bh(_mm512_maskz_loadu_epi16(tail_mask, x + full)));
    }
    out[r] = sum_lanes(a0);
  }
}

void gemv_rows_avx512(const uint16_t* weight, int64_t cols, const float* x, float* out,
                      int64_t begin, int64_t end) {
  // 16 columns per step: the weights are widened to fp32 and multiplied with the fp32 x.
  const int64_t full = cols / 16 * 16;
  const int64_t tail = cols - full;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  auto load_w = [](const uint16_t* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  };
  auto load_w_tail = [tail_mask](const uint16_t* p) {
    return widen(_mm256_maskz_loadu_epi16(tail_mask, p));
  };
  int64_t r = begin;
  for (; r + kRowBlock <= end; r += kRowBlock) {
    const uint16_t* w0 = weight + r * cols;
    const uint16_t* w1 = w0 + cols;
    const uint16_t* w2 = w1 + cols;
    const uint16_t* w3 = w2 + cols;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int64_t c = 0; c < full; c += 16) {
      const __m512 xv = _mm512_loadu_ps(x + c);
      a0 = _mm512_fmadd_ps(load_w(w0 + c), xv, a0);
      a1 = _mm512_fmadd_ps(load_w(w1 + c), xv, a1);
      a2 = _mm512_fmadd_ps(load_w(w2 + c), xv, a2);
      a3 = _mm512_fmadd_ps(load_w(w3 + c), xv, a3);
    }
    if (tail != 0) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail_mask, x + full);
      a0 = _mm512_fmadd_ps(load_w_tail(w0 + full), xv, a0);
      a1 = _mm512_fmadd_ps(load_w_tail(w1 + full), xv, a1);
      a2 = _mm512_fmadd_ps(load_w_tail(w2 + full), xv, a2);
      a3 = _mm512_fmadd_ps(load_w_tail(w3 + full), xv, a3);
    }
    out[r] = sum_lanes(a0);
    out[r + 1] = sum_lanes(a1);
    out[r + 2] = sum_lanes(a2);
    out[r + 3] = sum_lanes(a3);
  }
  for (; r < end; ++r) {
    const uint16_t* w0 = weight + r * cols;
    __m512 a0 = _mm512_setzero_ps();
    for (int64_t c = 0; c < full; c += 16) {
      a0 = _mm512_fmadd_ps(load_w(w0 + c), _mm512_loadu_ps(x + c), a0);
    }
    if (tail != 0) {
      a0 = _mm512_fmadd_ps(load_w_tail(w0 + full), _mm512_maskz_loadu_ps(tail_mask, x + full), a0);
    }
    out[r] = sum_lanes(a0);
  }
}

}  // namespace pio::kernels::internal
