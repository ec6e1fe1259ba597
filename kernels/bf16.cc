#include "pio/kernels/bf16.h"

#include <cmath>

namespace pio::kernels {

uint16_t float_to_bf16(float value) {
  if (std::isnan(value)) return 0x7FC0;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  // Round to nearest, ties to even: add 0x7FFF plus the lowest kept bit, then truncate.
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

void floats_to_bf16(std::span<const float> in, std::span<uint16_t> out) {
  for (size_t i = 0; i < in.size(); ++i) out[i] = float_to_bf16(in[i]);
}

}  // namespace pio::kernels
