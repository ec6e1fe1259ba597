#pragma once
// The bytes cuda_ipc_test_exporter writes into the buffer it exports, so the test can check what
// it reads through the imported handle.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pio::ipc::testing {

inline std::vector<uint8_t> cuda_test_pattern(size_t bytes, uint32_t seed) {
  std::vector<uint8_t> out(bytes);
  uint32_t state = seed * 2654435761u + 1;
  for (size_t i = 0; i < bytes; ++i) {
    state = state * 1664525u + 1013904223u;  // an LCG: every byte depends on seed and position
    out[i] = static_cast<uint8_t>(state >> 24);
  }
  return out;
}

}  // namespace pio::ipc::testing
