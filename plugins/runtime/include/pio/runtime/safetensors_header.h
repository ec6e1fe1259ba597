#pragma once
// Parsing and validating the header of a safetensors file: the untrusted part of a checkpoint.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data section. The
// JSON maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
// the data section), plus an optional "__metadata__" object of strings. Validation follows the
// reference implementation (huggingface/safetensors): the tensors tile the data section exactly,
// with no overlap, no gap and no trailing bytes; each byte length equals dtype size x shape.
// On top of that each tensor must start at a multiple of its element size within the file, so
// a page-aligned mapping yields pointers that libtorch can use without copying.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

// The reference implementation's limit; real headers are a few hundred KiB.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t file_offset = 0;  // absolute: 8 + header length + data_offsets[0]
  uint64_t byte_length = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensorInfo> tensors;  // in data order (ascending file_offset)
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts in the file
};

// Parses and validates the header of `file` (the whole file's bytes: the data section's size is
// part of what is checked). Every error names `file_label` and, where one is involved, the tensor.
Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file,
                                                   std::string_view file_label);

}  // namespace pio::runtime
