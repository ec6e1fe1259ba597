#pragma once
// The per-ISA row loops behind gemv_bf16: each computes rows [begin, end) of one matrix.

#include <cstdint>

namespace pio::kernels::internal {

void gemv_rows_portable(const uint16_t* weight, int64_t cols, const uint16_t* x, float* out,
                        int64_t begin, int64_t end);
void gemv_rows_portable(const uint16_t* weight, int64_t cols, const float* x, float* out,
                        int64_t begin, int64_t end);

// Compiled with -mavx512bf16 (gemv_bf16_avx512.cc): call only when the CPU has it.
void gemv_rows_avx512(const uint16_t* weight, int64_t cols, const uint16_t* x, float* out,
                      int64_t begin, int64_t end);
void gemv_rows_avx512(const uint16_t* weight, int64_t cols, const float* x, float* out,
                      int64_t begin, int64_t end);

}  // namespace pio::kernels::internal
