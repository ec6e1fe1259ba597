// Feeds arbitrary bytes to the safetensors header parser as a whole file. Beyond not crashing,
// an accepted header must keep the promises the loader relies on: every tensor inside the file,
// aligned to its element size, byte length = dtype size x shape, and the tensors tiling the data
// section without overlap.

#include <cstddef>
#include <cstdint>
#include <span>

#include "pio/ipc/check.h"
#include "pio/runtime/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pio::runtime;
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  pio::Result<SafetensorsHeader> header = parse_safetensors_header(file, "fuzz.safetensors");
  if (!header.ok()) {
    PIO_CHECK(!header.status().message().empty());
    return 0;
  }
  uint64_t expected_offset = header->data_offset;
  PIO_CHECK(header->data_offset >= 8 && header->data_offset <= size);
  for (const SafetensorsTensorInfo& t : header->tensors) {
    PIO_CHECK(t.file_offset == expected_offset);
    PIO_CHECK(t.byte_length <= size - t.file_offset);
    PIO_CHECK(t.file_offset % dtype_size(t.dtype) == 0);
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      PIO_CHECK(d >= 0);
      PIO_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes));
    }
    PIO_CHECK(bytes == t.byte_length);
    expected_offset = t.file_offset + t.byte_length;
  }
  PIO_CHECK(expected_offset == size);
  return 0;
}
