#pragma once
// Several-token matrix products with bf16 weights: out[t] = W x[t] for every token t, W row-major
// [rows, cols] (nn.Linear layout), x bf16 [tokens, cols], out fp32. The prefill step of a
// language model, with fixed, ahead-of-time compiled code.
//
// Why not libtorch's bf16 matmul: it goes through oneDNN, which generates its kernels at run time
// (JIT) into memory it then makes executable. A low-trust worker may never make memory
// executable, so there oneDNN cannot create a single primitive and the model could not run.
//
// Each thread takes blocks of 4 weight rows and runs them against every token, 2 tokens at a
// time: the block (4 x cols bf16) stays in L1 while x streams from L2, so every weight byte is
// read from memory once per call, not once per token.
//
// What a caller gets wrong: `out_stride` is the distance (in floats) between two tokens' rows of
// out, so several matrices can write side by side into one [tokens, sum of rows] buffer; and as
// with gemv_bf16, results agree with an fp32 reference to rounding, not bit for bit.
#include <cstdint>
#include <span>

#include "pio/kernels/gemv_bf16.h"
#include "pio/kernels/thread_pool.h"

namespace pio::kernels {

// For each matrix m, token t < tokens and row r < m.rows:
//   m.out[t * out_stride + r] = sum_c m.weight[r * cols + c] * x[t * cols + c].
// `pool` may be null (the calling thread does all the rows). `isa` as for gemv_bf16.
void gemm_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const uint16_t* x,
               int64_t tokens, int64_t out_stride, ThreadPool* pool, GemvIsa isa = best_gemv_isa());

}  // namespace pio::kernels
