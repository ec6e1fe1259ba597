#include "pio/kernels/gemv_bf16.h"

#include <algorithm>

#include "internal/gemv_rows.h"
#include "pio/ipc/check.h"
#include "pio/kernels/bf16.h"

namespace pio::kernels {
namespace internal {

void gemv_rows_portable(const uint16_t* weight, int64_t cols, const uint16_t* x, float* out,
                        int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const uint16_t* row = weight + r * cols;
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c) sum += bf16_to_float(row[c]) * bf16_to_float(x[c]);
    out[r] = sum;
  }
}

void gemv_rows_portable(const uint16_t* weight, int64_t cols, const float* x, float* out,
                        int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    const uint16_t* row = weight + r * cols;
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c) sum += bf16_to_float(row[c]) * x[c];
    out[r] = sum;
  }
}

}  // namespace internal

namespace {

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

// The rows of all matrices are numbered one after another and handed out in chunks, so a call's
// work splits evenly however the rows are spread over the matrices.
template <typename X>
void run(std::span<const GemvMatrix> matrices, int64_t cols, const X* x, ThreadPool* pool,
         GemvIsa isa) {
  PIO_CHECK(cols >= 0);
  int64_t total = 0;
  for (const GemvMatrix& m : matrices) {
    PIO_CHECK(m.rows >= 0);
    total += m.rows;
  }
  const bool avx512 = isa == GemvIsa::kAvx512Bf16;
  PIO_CHECK(!avx512 || best_gemv_isa() == GemvIsa::kAvx512Bf16);
  auto rows = [&](int64_t begin, int64_t end) {
    int64_t first = 0;  // global number of the current matrix's row 0
    for (const GemvMatrix& m : matrices) {
      const int64_t lo = std::max(begin, first) - first;
      const int64_t hi = std::min(end, first + m.rows) - first;
      if (lo < hi) {
        if (avx512) {
          internal::gemv_rows_avx512(m.weight, cols, x, m.out, lo, hi);
        } else {
          internal::gemv_rows_portable(m.weight, cols, x, m.out, lo, hi);
        }
      }
      first += m.rows;
    }
  };
  if (pool == nullptr) {
    rows(0, total);
  } else {
    // Chunks of about 128 KiB of weights: small enough that a thread the machine does not
    // schedule in time holds up little, large enough that claiming them costs nothing. Multiples
    // of 4 rows keep the kernels' 4-row blocks whole.
    const int64_t grain =
        std::max<int64_t>(4, (int64_t{1} << 16) / std::max<int64_t>(cols, 1) / 4 * 4);
    pool->parallel_for(total, grain, rows);
  }
}

}  // namespace

std::string_view gemv_isa_name(GemvIsa isa) {
  switch (isa) {
    case GemvIsa::kPortable:
      return "portable";
    case GemvIsa::kAvx512Bf16:
      return "avx512_bf16";
  }
  return "unknown";
}

std::vector<GemvIsa> available_gemv_isas() {
  std::vector<GemvIsa> isas = {GemvIsa::kPortable};
  if (cpu_has_avx512_bf16()) isas.push_back(GemvIsa::kAvx512Bf16);
  return isas;
}

GemvIsa best_gemv_isa() {
  static const GemvIsa best = available_gemv_isas().back();
  return best;
}

void gemv_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const uint16_t* x,
               ThreadPool* pool, GemvIsa isa) {
  run(matrices, cols, x, pool, isa);
}

void gemv_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const float* x, ThreadPool* pool,
               GemvIsa isa) {
  run(matrices, cols, x, pool, isa);
}

}  // namespace pio::kernels
