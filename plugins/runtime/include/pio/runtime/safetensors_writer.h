#pragma once
// Writing a safetensors file that the reference implementation and our loader both accept.
//
// Tensors are laid out by descending element size, then by name (as the reference writer does),
// and the header is padded with spaces to a multiple of 8 bytes, so every tensor starts aligned
// to its element size. The data comes from a fill callback, one tensor at a time, so a file of
// any size is written with one tensor's worth of memory. What a caller gets wrong: `fill` must
// write exactly the span it is given (dtype size x shape bytes, in the file's little-endian
// byte order), and it is called in layout order, not in the order of `tensors`.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;

  // dtype size x product(shape); PIO_CHECKs that it fits in 64 bits (specs are our own).
  uint64_t byte_length() const;
};

using TensorFill = std::function<void(const TensorSpec& tensor, std::span<std::byte> out)>;

// Writes `tensors` to `path` (replacing it). Tensor names must be unique and not
// "__metadata__". Returns the bytes written.
Result<uint64_t> write_safetensors(const std::filesystem::path& path,
                                   std::vector<TensorSpec> tensors,
                                   const std::map<std::string, std::string>& metadata,
                                   const TensorFill& fill);

}  // namespace pio::runtime
