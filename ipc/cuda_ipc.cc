#include "pio/ipc/cuda_ipc.h"

#include <cuda.h>
#include <fmt/format.h>

#include <cstring>
#include <utility>

namespace pio::ipc {
namespace {

// The one cudaError_t -> Status mapping: "<call>: <CUDA's message> (<error name>)".
Status cuda_error(std::string_view call, cudaError_t err) {
  // Clear the (non-sticky) error so that a later, unrelated cudaGetLastError does not report it.
  static_cast<void>(cudaGetLastError());
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case cudaErrorMemoryAllocation:
      code = ErrorCode::kResourceExhausted;
      break;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidResourceHandle:
    case cudaErrorInvalidDevice:
    case cudaErrorMapBufferObjectFailed:
      code = ErrorCode::kInvalidArgument;
      break;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorDevicesUnavailable:
      code = ErrorCode::kUnavailable;
      break;
    default:
      break;
  }
  return Status(code,
                fmt::format("{}: {} ({})", call, cudaGetErrorString(err), cudaGetErrorName(err)));
}

Status check(std::string_view call, cudaError_t err) {
  return err == cudaSuccess ? ok_status() : cuda_error(call, err);
}

// Makes a device current for one scope and puts the previous one back at its end, so exporting or
// importing on another GPU does not change the caller's current device.
class ScopedDevice {
 public:
  ScopedDevice() = default;
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;
  ~ScopedDevice() {
    if (restore_) static_cast<void>(cudaSetDevice(previous_));
  }

  Status enter(int device) {
    PIO_RETURN_IF_ERROR(check("cudaGetDevice", cudaGetDevice(&previous_)));
    if (previous_ == device) return ok_status();
    PIO_RETURN_IF_ERROR(check("cudaSetDevice", cudaSetDevice(device)));
    restore_ = true;
    return ok_status();
  }

 private:
  int previous_ = 0;
  bool restore_ = false;
};

struct AllocationRange {
  uintptr_t base = 0;
  uint64_t size = 0;
};

// The allocation `ptr` lies in (current device's context). The runtime API cannot tell, so this
// asks the driver's cuMemGetAddressRange through the runtime's entry-point lookup (no link
// against libcuda needed).
Result<AllocationRange> allocation_range(const void* ptr) {
  using MemGetAddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);
  void* symbol = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  PIO_RETURN_IF_ERROR(check("cudaGetDriverEntryPointByVersion(cuMemGetAddressRange)",
                            cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &symbol, 12000,
                                                             cudaEnableDefault, &found)));
  if (found != cudaDriverEntryPointSuccess || symbol == nullptr) {
    return unimplemented_error(
        "cudaGetDriverEntryPointByVersion: the driver has no cuMemGetAddressRange; update the "
        "NVIDIA driver");
  }
  CUdeviceptr base = 0;
  size_t size = 0;
  const CUresult result = reinterpret_cast<MemGetAddressRange>(symbol)(
      &base, &size, static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(ptr)));
  if (result != CUDA_SUCCESS) {
    return invalid_argument_error(
        fmt::format("cuMemGetAddressRange: {} is not inside a device allocation (CUresult {})", ptr,
                    static_cast<int>(result)));
  }
  return AllocationRange{static_cast<uintptr_t>(base), size};
}

Status check_handle_length(std::string_view which, size_t length) {
  if (length == kCudaIpcHandleBytes) return ok_status();
  return invalid_argument_error(fmt::format("CUDA IPC {} handle is {} bytes; it must be {}", which,
                                            length, kCudaIpcHandleBytes));
}

}  // namespace

flatbuffers::Offset<wire::CudaIpcRef> build_cuda_ipc_ref(flatbuffers::FlatBufferBuilder& fbb,
                                                         const CudaIpcExport& handles,
                                                         uint64_t offset) {
  const auto mem = fbb.CreateVector(reinterpret_cast<const uint8_t*>(handles.mem_handle.data()),
                                    handles.mem_handle.size());
  const auto event = fbb.CreateVector(reinterpret_cast<const uint8_t*>(handles.event_handle.data()),
                                      handles.event_handle.size());
  return wire::CreateCudaIpcRef(fbb, mem, event, handles.device_index, offset,
                                handles.allocation_id);
}

Result<CudaTensorRef> read_cuda_ipc_ref(const wire::CudaIpcRef* ref) {
  if (ref == nullptr) return invalid_argument_error("a Cuda tensor has no CUDA IPC handles (cuda)");
  if (ref->mem_handle() == nullptr) return invalid_argument_error("cuda.mem_handle is missing");
  if (ref->event_handle() == nullptr) {
    return invalid_argument_error("cuda.event_handle is missing");
  }
  PIO_RETURN_IF_ERROR(check_handle_length("memory", ref->mem_handle()->size()));
  PIO_RETURN_IF_ERROR(check_handle_length("event", ref->event_handle()->size()));
  if (ref->device_index() < 0) {
    return invalid_argument_error(
        fmt::format("cuda.device_index is {}; it must be >= 0", ref->device_index()));
  }
  CudaTensorRef out;
  std::memcpy(out.handles.mem_handle.data(), ref->mem_handle()->data(), kCudaIpcHandleBytes);
  std::memcpy(out.handles.event_handle.data(), ref->event_handle()->data(), kCudaIpcHandleBytes);
  out.handles.device_index = ref->device_index();
  out.handles.allocation_id = ref->allocation_id();
  out.offset = ref->offset();
  return out;
}

// --- producer ---

CudaIpcExporter::~CudaIpcExporter() { release_all().ignore(); }

Result<CudaIpcExport> CudaIpcExporter::export_allocation(void* device_ptr, uint64_t size,
                                                         cudaStream_t stream) {
  if (device_ptr == nullptr) return invalid_argument_error("cuda ipc export: null device pointer");
  cudaPointerAttributes attributes{};
  PIO_RETURN_IF_ERROR(
      check("cudaPointerGetAttributes", cudaPointerGetAttributes(&attributes, device_ptr)));
  if (attributes.type != cudaMemoryTypeDevice) {
    return invalid_argument_error(
        fmt::format("cuda ipc export: {} is not device memory from cudaMalloc (memory type {})",
                    device_ptr, static_cast<int>(attributes.type)));
  }
  ScopedDevice scoped;
  PIO_RETURN_IF_ERROR(scoped.enter(attributes.device));
  PIO_ASSIGN_OR_RETURN(const AllocationRange range, allocation_range(device_ptr));
  if (range.base != reinterpret_cast<uintptr_t>(device_ptr)) {
    return invalid_argument_error(fmt::format(
        "cuda ipc export: {} is {} bytes into its allocation; export the allocation's start and "
        "send the tensor's offset",
        device_ptr, reinterpret_cast<uintptr_t>(device_ptr) - range.base));
  }
  if (size > range.size) {
    return invalid_argument_error(
        fmt::format("cuda ipc export: {} bytes asked, but the allocation at {} has {} bytes", size,
                    device_ptr, range.size));
  }

  cudaIpcMemHandle_t mem_handle{};
  PIO_RETURN_IF_ERROR(check("cudaIpcGetMemHandle", cudaIpcGetMemHandle(&mem_handle, device_ptr)));
  cudaEvent_t event = nullptr;
  PIO_RETURN_IF_ERROR(
      check("cudaEventCreateWithFlags(interprocess)",
            cudaEventCreateWithFlags(&event, cudaEventInterprocess | cudaEventDisableTiming)));
  cudaIpcEventHandle_t event_handle{};
  Status status = check("cudaEventRecord", cudaEventRecord(event, stream));
  if (status.ok())
    status = check("cudaIpcGetEventHandle", cudaIpcGetEventHandle(&event_handle, event));
  if (!status.ok()) {
    static_cast<void>(cudaEventDestroy(event));
    return status;
  }

  CudaIpcExport out;
  std::memcpy(out.mem_handle.data(), &mem_handle, kCudaIpcHandleBytes);
  std::memcpy(out.event_handle.data(), &event_handle, kCudaIpcHandleBytes);
  out.device_index = attributes.device;
  out.allocation_id = next_id_++;
  live_.emplace(out.allocation_id, Exported{device_ptr, event, attributes.device});
  return out;
}

Status CudaIpcExporter::free_exported(const Exported& exported) {
  ScopedDevice scoped;
  PIO_RETURN_IF_ERROR(scoped.enter(exported.device_index));
  const Status event_status = check("cudaEventDestroy", cudaEventDestroy(exported.event));
  const Status free_status = check("cudaFree", cudaFree(exported.device_ptr));
  return event_status.ok() ? free_status : event_status;
}

Status CudaIpcExporter::release(uint64_t allocation_id) {
  const auto it = live_.find(allocation_id);
  if (it == live_.end()) {
    return invalid_argument_error(fmt::format(
        "cuda ipc release: allocation {} is not exported (never, or already released); {} are live",
        allocation_id, live_.size()));
  }
  const Exported exported = it->second;
  live_.erase(it);  // forgotten even if freeing fails: never freed twice
  return free_exported(exported);
}

Status CudaIpcExporter::release_all() {
  Status first;
  for (const auto& [id, exported] : live_) {
    Status status = free_exported(exported);
    if (first.ok() && !status.ok()) first = status.with_context(fmt::format("allocation {}", id));
  }
  live_.clear();
  return first;
}

// --- consumer ---

Result<CudaIpcImport> CudaIpcImport::open(std::span<const std::byte> mem_handle,
                                          std::span<const std::byte> event_handle, int device_index,
                                          uint64_t allocation_id, cudaStream_t stream) {
  PIO_RETURN_IF_ERROR(check_handle_length("memory", mem_handle.size()));
  PIO_RETURN_IF_ERROR(check_handle_length("event", event_handle.size()));
  int device_count = 0;
  PIO_RETURN_IF_ERROR(check("cudaGetDeviceCount", cudaGetDeviceCount(&device_count)));
  if (device_index < 0 || device_index >= device_count) {
    return invalid_argument_error(
        fmt::format("cuda ipc import: device index {} is not one of this process's {} devices",
                    device_index, device_count));
  }
  ScopedDevice scoped;
  PIO_RETURN_IF_ERROR(scoped.enter(device_index));

  cudaIpcMemHandle_t mem{};
  std::memcpy(&mem, mem_handle.data(), kCudaIpcHandleBytes);
  cudaIpcEventHandle_t event{};
  std::memcpy(&event, event_handle.data(), kCudaIpcHandleBytes);

  CudaIpcImport imported;  // closes whatever was opened if a later step fails
  imported.device_index_ = device_index;
  imported.allocation_id_ = allocation_id;
  void* ptr = nullptr;
  PIO_RETURN_IF_ERROR(check("cudaIpcOpenMemHandle",
                            cudaIpcOpenMemHandle(&ptr, mem, cudaIpcMemLazyEnablePeerAccess)));
  imported.device_ptr_ = ptr;
  PIO_ASSIGN_OR_RETURN(const AllocationRange range, allocation_range(ptr));
  if (range.base != reinterpret_cast<uintptr_t>(ptr)) {
    return internal_error(fmt::format(
        "cuda ipc import: cudaIpcOpenMemHandle returned {}, inside an allocation starting at {:#x}",
        ptr, range.base));
  }
  imported.size_ = range.size;
  PIO_RETURN_IF_ERROR(
      check("cudaIpcOpenEventHandle", cudaIpcOpenEventHandle(&imported.event_, event)));
  PIO_RETURN_IF_ERROR(
      check("cudaStreamWaitEvent", cudaStreamWaitEvent(stream, imported.event_, 0)));
  return imported;
}

Result<CudaIpcImport> CudaIpcImport::open(const CudaIpcExport& handles, cudaStream_t stream) {
  return open(handles.mem_handle, handles.event_handle, handles.device_index, handles.allocation_id,
              stream);
}

CudaIpcImport::CudaIpcImport(CudaIpcImport&& other) noexcept
    : device_ptr_(std::exchange(other.device_ptr_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      event_(std::exchange(other.event_, nullptr)),
      device_index_(other.device_index_),
      allocation_id_(other.allocation_id_) {}

CudaIpcImport& CudaIpcImport::operator=(CudaIpcImport&& other) noexcept {
  if (this != &other) {
    close().ignore();
    device_ptr_ = std::exchange(other.device_ptr_, nullptr);
    size_ = std::exchange(other.size_, 0);
    event_ = std::exchange(other.event_, nullptr);
    device_index_ = other.device_index_;
    allocation_id_ = other.allocation_id_;
  }
  return *this;
}

CudaIpcImport::~CudaIpcImport() { close().ignore(); }

Result<const void*> CudaIpcImport::range(uint64_t offset, uint64_t length) const {
  if (!is_open()) {
    return failed_precondition_error(
        fmt::format("cuda ipc import of allocation {} is closed", allocation_id_));
  }
  if (offset > size_ || length > size_ - offset) {
    return invalid_argument_error(
        fmt::format("cuda ipc: offset {} with length {} is not inside allocation {} of {} bytes",
                    offset, length, allocation_id_, size_));
  }
  return static_cast<const void*>(static_cast<const std::byte*>(device_ptr_) + offset);
}

Status CudaIpcImport::close() {
  if (device_ptr_ == nullptr && event_ == nullptr) return ok_status();
  ScopedDevice scoped;
  Status status = scoped.enter(device_index_);
  if (event_ != nullptr) {
    Status event_status = check("cudaEventDestroy", cudaEventDestroy(event_));
    if (status.ok()) status = event_status;
  }
  if (device_ptr_ != nullptr) {
    Status close_status = check("cudaIpcCloseMemHandle", cudaIpcCloseMemHandle(device_ptr_));
    if (status.ok()) status = close_status;
  }
  device_ptr_ = nullptr;
  event_ = nullptr;
  size_ = 0;
  return status;
}

}  // namespace pio::ipc
