#include "pio/ipc/tensor_view.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>

namespace pio::ipc {
namespace {

constexpr std::string_view kKnownDtypes = "F32, F16, BF16, F64, I8, U8, I16, I32, I64, Bool";

std::string_view ring_name(wire::Ring ring) {
  switch (ring) {
    case wire::Ring::HostToWorker:
      return "HostToWorker";
    case wire::Ring::WorkerToHost:
      return "WorkerToHost";
  }
  return "unknown";
}

bool is_known_ring(wire::Ring ring) { return ring_name(ring) != "unknown"; }

// The name as it may appear in an error message: quoted, bytes outside printable ASCII escaped,
// cut at 64 bytes, so a hostile name cannot forge log lines or flood them.
std::string printable_name(std::string_view name) {
  constexpr size_t kShown = 64;
  std::string out = "\"";
  for (size_t i = 0; i < name.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += name.size() > kShown ? "\"..." : "\"";
  return out;
}

// Why `name` is not acceptable as a tensor name, or nullopt when it is: non-empty, at most
// `max_bytes`, well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)
// without control characters.
std::optional<std::string> name_problem(std::string_view name, size_t max_bytes) {
  if (name.empty()) return "is empty; every tensor needs a name";
  if (name.size() > max_bytes) {
    return fmt::format("is {} bytes long; at most {} are allowed", name.size(), max_bytes);
  }
  size_t i = 0;
  while (i < name.size()) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        return fmt::format("has control character 0x{:02x} at byte {}", c, i);
      ++i;
      continue;
    }
    size_t extra = 0;
    uint32_t code = 0;
    uint32_t min_code = 0;
    if ((c & 0xe0) == 0xc0) {
      extra = 1, code = c & 0x1f, min_code = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2, code = c & 0x0f, min_code = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3, code = c & 0x07, min_code = 0x10000;
    } else {
      return fmt::format("is not valid UTF-8 (byte 0x{:02x} at {})", c, i);
    }
    if (extra >= name.size() - i)
      return fmt::format("is not valid UTF-8 (truncated at byte {})", i);
    for (size_t k = 1; k <= extra; ++k) {
      const auto cont = static_cast<unsigned char>(name[i + k]);
      if ((cont & 0xc0) != 0x80) return fmt::format("is not valid UTF-8 (byte {})", i + k);
      code = (code << 6) | (cont & 0x3f);
    }
    if (code < min_code || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return fmt::format("is not valid UTF-8 (bad code point at byte {})", i);
    }
    if (code >= 0x80 && code < 0xa0) return fmt::format("has a control character at byte {}", i);
    i += extra + 1;
  }
  return std::nullopt;
}

Status bad_field(std::string_view tensor, std::string_view field, std::string what) {
  return invalid_argument_error(fmt::format("tensor {}: {} {}", tensor, field, what));
}

std::string shape_text(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

size_t dtype_size(wire::DType dtype) {
  switch (dtype) {
    case wire::DType::I8:
    case wire::DType::U8:
    case wire::DType::Bool:
      return 1;
    case wire::DType::F16:
    case wire::DType::BF16:
    case wire::DType::I16:
      return 2;
    case wire::DType::F32:
    case wire::DType::I32:
      return 4;
    case wire::DType::F64:
    case wire::DType::I64:
      return 8;
  }
  return 0;
}

std::string_view dtype_name(wire::DType dtype) {
  switch (dtype) {
    case wire::DType::F32:
      return "F32";
    case wire::DType::F16:
      return "F16";
    case wire::DType::BF16:
      return "BF16";
    case wire::DType::F64:
      return "F64";
    case wire::DType::I8:
      return "I8";
    case wire::DType::U8:
      return "U8";
    case wire::DType::I16:
      return "I16";
    case wire::DType::I32:
      return "I32";
    case wire::DType::I64:
      return "I64";
    case wire::DType::Bool:
      return "Bool";
  }
  return "unknown";
}

bool is_known_dtype(wire::DType dtype) { return dtype_size(dtype) != 0; }

Result<uint64_t> tensor_byte_size(wire::DType dtype, std::span<const int64_t> shape) {
  if (!is_known_dtype(dtype)) {
    return invalid_argument_error(
        fmt::format("dtype {} is not one of {}", static_cast<unsigned>(dtype), kKnownDtypes));
  }
  if (shape.size() > kMaxTensorRank) {
    return invalid_argument_error(
        fmt::format("rank {} is above the maximum {}", shape.size(), kMaxTensorRank));
  }
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return invalid_argument_error(
          fmt::format("dimension {} of shape {} is negative ({})", i, shape_text(shape), shape[i]));
    }
    empty = empty || shape[i] == 0;
  }
  // A zero dimension makes the tensor empty, however large the others are.
  if (empty) return uint64_t{0};
  uint64_t bytes = dtype_size(dtype);
  for (const int64_t dim : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) {
      return invalid_argument_error(fmt::format("shape {} of {} is larger than 2^64 bytes",
                                                shape_text(shape), dtype_name(dtype)));
    }
  }
  return bytes;
}

Result<TensorView> validate_tensor_desc(const wire::TensorDesc* desc, wire::Ring expected_ring,
                                        const RegionBounds& bounds,
                                        const TensorDescLimits& limits) {
  PIO_CHECK(limits.max_rank <= kMaxTensorRank);
  PIO_CHECK(bounds.arena_base != nullptr && bounds.ring_offset <= UINT64_MAX - bounds.ring_size);
  if (desc == nullptr) return invalid_argument_error("tensor descriptor is missing");

  // The name first: every later message names the tensor.
  const flatbuffers::String* wire_name = desc->name();
  const std::string_view raw_name =
      wire_name != nullptr ? std::string_view(wire_name->data(), wire_name->size()) : "";
  const std::string shown = printable_name(raw_name);
  if (wire_name == nullptr)
    return bad_field(shown, "name", "is missing; every tensor needs a name");
  if (auto problem = name_problem(raw_name, limits.max_name_bytes)) {
    return bad_field(shown, "name", *problem);
  }

  const wire::Device device = desc->device();
  if (device == wire::Device::Cuda) {
    return bad_field(shown, "device",
                     "is Cuda, but a shared-memory tensor must be Cpu (GPU tensors are opened "
                     "from their CUDA IPC handles)");
  }
  if (device != wire::Device::Cpu) {
    return bad_field(shown, "device",
                     fmt::format("{} is not one of Cpu, Cuda", static_cast<unsigned>(device)));
  }
  if (desc->cuda() != nullptr) {
    return bad_field(shown, "cuda", "is set on a Cpu tensor; only Cuda tensors carry IPC handles");
  }

  const wire::Ring ring = desc->ring();
  if (!is_known_ring(ring)) {
    return bad_field(
        shown, "ring",
        fmt::format("{} is not one of HostToWorker, WorkerToHost", static_cast<unsigned>(ring)));
  }
  if (ring != expected_ring) {
    return bad_field(shown, "ring",
                     fmt::format("is {}, but tensors in this message must be in {}",
                                 ring_name(ring), ring_name(expected_ring)));
  }

  const wire::DType dtype = desc->dtype();
  if (!is_known_dtype(dtype)) {
    return bad_field(
        shown, "dtype",
        fmt::format("{} is not one of {}", static_cast<unsigned>(dtype), kKnownDtypes));
  }

  TensorShape shape;
  if (const flatbuffers::Vector<int64_t>* wire_shape = desc->shape()) {
    if (wire_shape->size() > limits.max_rank) {
      return bad_field(
          shown, "shape",
          fmt::format("has rank {}; at most {} is allowed", wire_shape->size(), limits.max_rank));
    }
    // The flatbuffers Verifier (2.0.8) checks a vector's length prefix but not that 8-byte
    // elements are 8-byte aligned; a real builder always aligns them, so a misaligned shape is
    // forged. Refuse it rather than read it.
    if (reinterpret_cast<uintptr_t>(wire_shape->Data()) % alignof(int64_t) != 0) {
      return bad_field(shown, "shape",
                       "is not 8-byte aligned (not written by a flatbuffers builder)");
    }
    shape.assign(wire_shape->begin(), wire_shape->end());
  }
  const std::span<const int64_t> dims(shape.data(), shape.size());
  auto bytes = tensor_byte_size(dtype, dims);
  if (!bytes.ok()) return bad_field(shown, "shape", bytes.status().message());

  const uint64_t offset = desc->offset();
  const uint64_t length = desc->length();
  if (*bytes != length) {
    return bad_field(shown, "length",
                     fmt::format("is {} bytes, but shape {} of {} needs {} bytes", length,
                                 shape_text(dims), dtype_name(dtype), *bytes));
  }
  // offset + length may not fit in 64 bits: compare distances from the ring's start instead.
  const uint64_t ring_end = bounds.ring_offset + bounds.ring_size;
  if (offset < bounds.ring_offset || offset - bounds.ring_offset > bounds.ring_size ||
      length > bounds.ring_size - (offset - bounds.ring_offset)) {
    return bad_field(shown, "offset",
                     fmt::format("{} with length {} is not inside ring {} (arena bytes [{}, {}))",
                                 offset, length, ring_name(ring), bounds.ring_offset, ring_end));
  }

  // The arena is page-aligned, so an aligned offset gives the host an aligned pointer: readers
  // (and vector loads) may then treat the bytes as elements.
  if (offset % dtype_size(dtype) != 0) {
    return bad_field(shown, "offset",
                     fmt::format("{} is not a multiple of the {}-byte {} element", offset,
                                 dtype_size(dtype), dtype_name(dtype)));
  }

  TensorView view;
  view.name.assign(raw_name);
  view.dtype = dtype;
  view.shape = std::move(shape);
  view.data = bounds.arena_base + offset;
  view.length = length;
  view.ring = ring;
  view.offset = offset;
  return view;
}

Result<flatbuffers::Offset<wire::TensorDesc>> build_tensor_desc(
    flatbuffers::FlatBufferBuilder& fbb, std::string_view name, wire::DType dtype,
    std::span<const int64_t> shape, wire::Ring ring, const RingSlot& slot) {
  const std::string shown = printable_name(name);
  if (auto problem = name_problem(name, TensorDescLimits{}.max_name_bytes)) {
    return bad_field(shown, "name", *problem);
  }
  if (!is_known_ring(ring)) {
    return bad_field(
        shown, "ring",
        fmt::format("{} is not one of HostToWorker, WorkerToHost", static_cast<unsigned>(ring)));
  }
  auto bytes = tensor_byte_size(dtype, shape);
  if (!bytes.ok()) return bad_field(shown, "shape", bytes.status().message());
  if (*bytes != slot.length) {
    return bad_field(shown, "length",
                     fmt::format("of the slot is {} bytes, but shape {} of {} needs {} bytes",
                                 slot.length, shape_text(shape), dtype_name(dtype), *bytes));
  }
  const auto wire_name = fbb.CreateString(name.data(), name.size());
  const auto wire_shape = fbb.CreateVector(shape.data(), shape.size());
  wire::TensorDescBuilder builder(fbb);
  builder.add_name(wire_name);
  builder.add_dtype(dtype);
  builder.add_shape(wire_shape);
  builder.add_device(wire::Device::Cpu);
  builder.add_ring(ring);
  builder.add_offset(slot.offset);
  builder.add_length(slot.length);
  return builder.Finish();
}

}  // namespace pio::ipc
