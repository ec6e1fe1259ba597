#pragma once
// bfloat16 as raw bits (uint16_t): the upper half of an IEEE fp32. Conversions here match
// libtorch's c10::BFloat16 (round to nearest even, NaN kept a quiet NaN), so a kernel fed with
// these bits sees the same values as the libtorch reference.

#include <cstdint>
#include <cstring>
#include <span>

namespace pio::kernels {

inline float bf16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

uint16_t float_to_bf16(float value);

// out[i] = float_to_bf16(in[i]); the spans have the same size.
void floats_to_bf16(std::span<const float> in, std::span<uint16_t> out);

}  // namespace pio::kernels
