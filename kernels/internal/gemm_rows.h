#pragma once
// The per-ISA loops behind gemm_bf16: rows [begin, end) of one matrix against every token.

#include <cstdint>

namespace pio::kernels::internal {

void gemm_rows_portable(const uint16_t* weight, int64_t cols, const uint16_t* x, int64_t tokens,
                        float* out, int64_t out_stride, int64_t begin, int64_t end);

// Compiled with -mavx512bf16 (gemm_bf16_avx512.cc): call only when the CPU has it.
void gemm_rows_avx512(const uint16_t* weight, int64_t cols, const uint16_t* x, int64_t tokens,
                      float* out, int64_t out_stride, int64_t begin, int64_t end);

}  // namespace pio::kernels::internal
