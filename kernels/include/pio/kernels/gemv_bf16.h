#pragma once
// Batch-1 matrix-vector products with bf16 weights: out = W x, W row-major [rows, cols] (the
// nn.Linear layout of a safetensors checkpoint), x in fp32 or bf16, out in fp32.
//
// This is the decode step of a language model: every weight is read once per token, so the
// kernel is bound by memory bandwidth and exists because libtorch's bf16 GEMV streams at under
// half the machine's read bandwidth (see the decode benchmark). Several matrices that share x
// (q/k/v, gate/up) go in one call, so the threads are started and joined once for all of them.
//
// What a caller gets wrong: the products accumulate in fp32 in an order that differs from
// libtorch's, so results agree with a reference to rounding (relative ~1e-6 of sum |w x|), not
// bit for bit; and with a bf16 x the AVX-512 BF16 path multiplies bf16 by bf16 exactly, while an
// fp32 x is used at full precision.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "pio/kernels/thread_pool.h"

namespace pio::kernels {

// One matrix of a call and where its results go (`rows` floats).
struct GemvMatrix {
  const uint16_t* weight = nullptr;  // bf16 bits, [rows, cols] row-major
  int64_t rows = 0;
  float* out = nullptr;
};

// Instruction sets the kernel has code for.
enum class GemvIsa {
  kPortable,    // plain C++, any CPU
  kAvx512Bf16,  // AVX-512 F/BW/VL + BF16 (vdpbf16ps)
};

std::string_view gemv_isa_name(GemvIsa isa);

// The ISAs this CPU can run, portable first; the last is the fastest.
std::vector<GemvIsa> available_gemv_isas();

// The fastest ISA this CPU can run (checked once, at first use).
GemvIsa best_gemv_isa();

// For each matrix m: m.out[r] = sum_c m.weight[r * cols + c] * x[c]. `pool` may be null (the
// calling thread does all the rows). `isa` must be one of available_gemv_isas().
void gemv_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const uint16_t* x,
               ThreadPool* pool, GemvIsa isa = best_gemv_isa());
void gemv_bf16(std::span<const GemvMatrix> matrices, int64_t cols, const float* x, ThreadPool* pool,
               GemvIsa isa = best_gemv_isa());

}  // namespace pio::kernels
