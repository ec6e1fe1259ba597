#pragma once
// DType: the element types a safetensors file can name, with their byte sizes.
//
// The loader accepts every dtype of the safetensors format so that any well-formed file can be
// validated (byte length = size x shape); which dtypes a model accepts is the model's business
// (see checkpoint_expectation.h). Model weights in practice are kBF16, kF16 or kF32.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pio::runtime {

enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// The spelling safetensors headers use: "BF16", "F32", "F8_E4M3", ...
std::string_view dtype_name(DType dtype);

// Bytes per element.
size_t dtype_size(DType dtype);

// Inverse of dtype_name; nullopt for anything else (the spelling is case-sensitive).
std::optional<DType> parse_dtype(std::string_view name);

// "[151936, 1024]"; "[]" for a scalar.
std::string shape_to_string(std::span<const int64_t> shape);

}  // namespace pio::runtime
