#pragma once
// Tensor descriptors on the data plane: the dtype table, the host's check of a descriptor a worker
// sent (validate_tensor_desc) and the writer's side (build_tensor_desc).
//
// A TensorDesc names a byte range in one ring of the shared-memory arena by ARENA offset (the same
// offsets ShmRing hands out). The flatbuffers Verifier only proves that the packet is well formed;
// validate_tensor_desc() proves that what it says makes sense: a known dtype, device and ring, a
// shape whose size matches the length, and a byte range inside the ring it claims. Only then may
// the host touch the bytes.
//
// The one thing a caller gets wrong: a TensorView's data points into shared memory that the worker
// can still write. Reading the bytes in place is the point (zero copy), but anything the host
// parses or branches on must be copied into private memory first and read once from there.

#include <flatbuffers/flatbuffers.h>

#include <boost/container/static_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "pio/ipc/messages_generated.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/status.h"

namespace pio::ipc {

inline constexpr size_t kMaxTensorRank = 8;

// Bytes per element of `dtype`; 0 for a value outside the enum (a newer or lying peer).
size_t dtype_size(wire::DType dtype);
// "F32", "BF16", "Bool", ... as in the schema; "unknown" for a value outside the enum.
std::string_view dtype_name(wire::DType dtype);
bool is_known_dtype(wire::DType dtype);

// Bytes of a dense tensor of `dtype` and `shape`. invalid_argument for an unknown dtype, a
// negative dimension, more than kMaxTensorRank dimensions, or a size that overflows 64 bits.
Result<uint64_t> tensor_byte_size(wire::DType dtype, std::span<const int64_t> shape);

// Where the ring a descriptor must point into lies: the arena's mapping in this process and the
// ring region's arena offset and size (ArenaLayout::ring_*()).
struct RegionBounds {
  const std::byte* arena_base = nullptr;
  uint64_t ring_offset = 0;
  uint64_t ring_size = 0;
};

// What the host accepts beyond what the schema can express.
struct TensorDescLimits {
  size_t max_rank = kMaxTensorRank;  // at most kMaxTensorRank
  size_t max_name_bytes = 256;
};

// A shape never outgrows kMaxTensorRank (parsing refuses more), so it lives inline: no
// allocation, and moves that cannot throw.
using TensorShape = boost::container::static_vector<int64_t, kMaxTensorRank>;

// A checked descriptor, copied out of the packet: only `data` still points into shared memory.
struct TensorView {
  std::string name;
  wire::DType dtype = wire::DType::F32;
  TensorShape shape;
  const std::byte* data = nullptr;  // arena_base + offset; `length` bytes, inside the ring
  uint64_t length = 0;
  wire::Ring ring = wire::Ring::HostToWorker;
  uint64_t offset = 0;  // arena offset, as in the descriptor

  // The slot to hand back to the producer's ShmRing (through a Release) when done reading.
  RingSlot slot() const { return RingSlot{offset, length}; }
};

// The host's defence against a hostile worker: checks every field of `desc` (already verified
// structurally) and returns a private copy of it. invalid_argument naming the tensor, the field,
// the bad value and what is allowed, for: a missing descriptor; a missing, empty, overlong,
// non-UTF-8 or control-character name; an unknown device, or Cuda (GPU tensors travel as CUDA IPC
// handles, see cuda_ipc.h) or CUDA handles on a CPU tensor; an unknown ring or a ring other than
// `expected_ring`; an unknown dtype; rank above limits.max_rank; a negative dimension; a shape
// whose byte size overflows or differs from `length`; a byte range not inside the ring (checked
// without overflow, whatever offset and length say); an offset that is not a multiple of the
// element size (the arena's mapping is page-aligned, so `data` is then aligned for the dtype).
Result<TensorView> validate_tensor_desc(const wire::TensorDesc* desc, wire::Ring expected_ring,
                                        const RegionBounds& bounds,
                                        const TensorDescLimits& limits = {});

// Writer side: a CPU TensorDesc for a tensor written into `slot` of `ring`. Checks what
// validate_tensor_desc() will check of it (name, dtype, shape against slot.length), so a writer
// never sends what the reader refuses.
Result<flatbuffers::Offset<wire::TensorDesc>> build_tensor_desc(
    flatbuffers::FlatBufferBuilder& fbb, std::string_view name, wire::DType dtype,
    std::span<const int64_t> shape, wire::Ring ring, const RingSlot& slot);

}  // namespace pio::ipc
