#pragma once
// CUDA IPC: a GPU tensor crosses the process boundary as a CUDA IPC memory handle plus an IPC
// event handle, never as bytes. The producer exports an allocation (CudaIpcExporter), the handle
// bytes travel in a wire CudaIpcRef, the consumer opens them (CudaIpcImport) and reads the memory
// in place, then sends Release so the producer may free it.
//
// Built only when CUDA is found (PIO_HAVE_CUDA); every CUDA error becomes a Status naming the call
// and CUDA's message. The handles come from the peer, which may lie: sizes, device indices and
// byte ranges are checked before CUDA sees them, and a bad handle is an error, not a crash.

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>

#include "pio/ipc/messages_generated.h"
#include "pio/ipc/status.h"

namespace pio::ipc {

inline constexpr size_t kCudaIpcHandleBytes = 64;
static_assert(sizeof(cudaIpcMemHandle_t) == kCudaIpcHandleBytes);
static_assert(sizeof(cudaIpcEventHandle_t) == kCudaIpcHandleBytes);

using CudaIpcHandleBytes = std::array<std::byte, kCudaIpcHandleBytes>;

// What a consumer needs to open one exported allocation.
struct CudaIpcExport {
  CudaIpcHandleBytes mem_handle{};
  CudaIpcHandleBytes event_handle{};  // recorded after the producer's writes
  int device_index = 0;
  uint64_t allocation_id = 0;  // chosen by the exporter; names the allocation in Release
};

// A CudaIpcRef as read from (or written to) the wire: the export plus the tensor's byte offset
// inside the allocation.
struct CudaTensorRef {
  CudaIpcExport handles;
  uint64_t offset = 0;
};

// Writes `handles` and the tensor's `offset` into a wire CudaIpcRef (for TensorDesc.cuda).
flatbuffers::Offset<wire::CudaIpcRef> build_cuda_ipc_ref(flatbuffers::FlatBufferBuilder& fbb,
                                                         const CudaIpcExport& handles,
                                                         uint64_t offset);

// Reads a verified wire CudaIpcRef. invalid_argument when it is missing, a handle is absent or not
// exactly kCudaIpcHandleBytes long, or the device index is negative.
Result<CudaTensorRef> read_cuda_ipc_ref(const wire::CudaIpcRef* ref);

// Producer side: owns allocations it has exported until the consumer releases them.
//
// The thing a caller gets wrong: export_allocation() TAKES OWNERSHIP of the memory (it is freed by
// release(), release_all() or the destructor, never by the caller), and the consumer may keep
// reading it until it sends Release, so nothing may be written there after exporting. Not
// thread-safe.
class CudaIpcExporter {
 public:
  CudaIpcExporter() = default;
  CudaIpcExporter(const CudaIpcExporter&) = delete;
  CudaIpcExporter& operator=(const CudaIpcExporter&) = delete;
  // Frees every allocation still held: only safe once the consumer is gone or done.
  ~CudaIpcExporter();

  // Exports `device_ptr`, the start of a cudaMalloc allocation of at least `size` bytes. Records
  // an interprocess event on `stream` after the writes already queued there, so a consumer that
  // waits on it sees them. On success the exporter owns the allocation; on failure the caller
  // still does. invalid_argument for a pointer that is not device memory, not the start of its
  // allocation, or an allocation smaller than `size`.
  Result<CudaIpcExport> export_allocation(void* device_ptr, uint64_t size, cudaStream_t stream);

  // The consumer is done with `allocation_id`: destroys its event and frees the memory.
  // invalid_argument, with nothing changed, for an id that is not live (unknown or released).
  Status release(uint64_t allocation_id);

  // The consumer died or restarted: frees everything. Returns the first CUDA error, if any, after
  // trying all.
  Status release_all();

  size_t live_count() const { return live_.size(); }

 private:
  struct Exported {
    void* device_ptr = nullptr;
    cudaEvent_t event = nullptr;
    int device_index = 0;
  };
  static Status free_exported(const Exported& exported);

  uint64_t next_id_ = 1;
  std::map<uint64_t, Exported> live_;
};

// Consumer side: one opened allocation of another process. Move-only; closes on destruction.
//
// The thing a caller gets wrong: the memory belongs to the producer and stays valid only until this
// import is closed and Release is sent; close first, then send Release. Work must be queued on the
// stream given to open() (or wait on it), which is the stream made to wait for the producer's
// event.
class CudaIpcImport {
 public:
  // Opens the handles on their device (cudaIpcMemLazyEnablePeerAccess), opens the event and makes
  // `stream` wait for it. Checks the handle lengths (kCudaIpcHandleBytes) and the device index
  // before any CUDA call; a handle CUDA refuses is an error naming the call.
  static Result<CudaIpcImport> open(std::span<const std::byte> mem_handle,
                                    std::span<const std::byte> event_handle, int device_index,
                                    uint64_t allocation_id, cudaStream_t stream);
  static Result<CudaIpcImport> open(const CudaIpcExport& handles, cudaStream_t stream);

  CudaIpcImport(CudaIpcImport&& other) noexcept;
  CudaIpcImport& operator=(CudaIpcImport&& other) noexcept;
  CudaIpcImport(const CudaIpcImport&) = delete;
  CudaIpcImport& operator=(const CudaIpcImport&) = delete;
  ~CudaIpcImport();

  // The start of the producer's allocation in this process, and its size as CUDA reports it.
  const void* device_ptr() const { return device_ptr_; }
  uint64_t size() const { return size_; }
  int device_index() const { return device_index_; }
  uint64_t allocation_id() const { return allocation_id_; }
  bool is_open() const { return device_ptr_ != nullptr; }

  // The device address of bytes [offset, offset + length) of the allocation; invalid_argument
  // when they are not inside it (checked without overflow) — a peer's offset must never make the
  // GPU read past the allocation.
  Result<const void*> range(uint64_t offset, uint64_t length) const;

  // Closes the memory handle and the event. Idempotent; the import is empty afterwards even when
  // CUDA reports an error (which is returned).
  Status close();

 private:
  CudaIpcImport() = default;

  void* device_ptr_ = nullptr;
  uint64_t size_ = 0;
  cudaEvent_t event_ = nullptr;
  int device_index_ = 0;
  uint64_t allocation_id_ = 0;
};

}  // namespace pio::ipc
