#include "pio/ipc/cuda_ipc.h"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_ipc_test_pattern.h"
#include "pio/ipc/messages_generated.h"

extern char** environ;

namespace pio::ipc {
namespace {

using ::testing::HasSubstr;

CudaIpcExport sample_export() {
  CudaIpcExport e;
  for (size_t i = 0; i < kCudaIpcHandleBytes; ++i) {
    e.mem_handle[i] = static_cast<std::byte>(i);
    e.event_handle[i] = static_cast<std::byte>(255 - i);
  }
  e.device_index = 1;
  e.allocation_id = 77;
  return e;
}

// A CudaIpcRef with any field set to anything, verified as the host verifies packets.
class RefBuffer {
 public:
  RefBuffer(std::optional<size_t> mem_bytes, std::optional<size_t> event_bytes, int device) {
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> mem, event;
    if (mem_bytes) mem = fbb_.CreateVector(std::vector<uint8_t>(*mem_bytes, 1));
    if (event_bytes) event = fbb_.CreateVector(std::vector<uint8_t>(*event_bytes, 2));
    fbb_.Finish(wire::CreateCudaIpcRef(fbb_, mem, event, device, 0, 1));
    flatbuffers::Verifier verifier(fbb_.GetBufferPointer(), fbb_.GetSize());
    EXPECT_TRUE(verifier.VerifyBuffer<wire::CudaIpcRef>(nullptr));
  }
  const wire::CudaIpcRef* get() const {
    return flatbuffers::GetRoot<wire::CudaIpcRef>(fbb_.GetBufferPointer());
  }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
};

// --- what needs no GPU ---

TEST(CudaIpcRef, WireRoundTripKeepsEveryField) {
  const CudaIpcExport e = sample_export();
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(build_cuda_ipc_ref(fbb, e, 4096));
  flatbuffers::Verifier verifier(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_TRUE(verifier.VerifyBuffer<wire::CudaIpcRef>(nullptr));
  auto read = read_cuda_ipc_ref(flatbuffers::GetRoot<wire::CudaIpcRef>(fbb.GetBufferPointer()));
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(read->handles.mem_handle, e.mem_handle);
  EXPECT_EQ(read->handles.event_handle, e.event_handle);
  EXPECT_EQ(read->handles.device_index, 1);
  EXPECT_EQ(read->handles.allocation_id, 77u);
  EXPECT_EQ(read->offset, 4096u);
}

TEST(CudaIpcRef, RejectsMissingOrWrongSizedHandlesAndNegativeDevices) {
  EXPECT_EQ(read_cuda_ipc_ref(nullptr).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(read_cuda_ipc_ref(RefBuffer(std::nullopt, 64, 0).get()).status().message(),
              HasSubstr("mem_handle is missing"));
  EXPECT_THAT(read_cuda_ipc_ref(RefBuffer(64, std::nullopt, 0).get()).status().message(),
              HasSubstr("event_handle is missing"));
  EXPECT_THAT(read_cuda_ipc_ref(RefBuffer(63, 64, 0).get()).status().message(),
              HasSubstr("memory handle is 63 bytes; it must be 64"));
  EXPECT_THAT(read_cuda_ipc_ref(RefBuffer(64, 65, 0).get()).status().message(),
              HasSubstr("event handle is 65 bytes"));
  EXPECT_THAT(read_cuda_ipc_ref(RefBuffer(64, 64, -1).get()).status().message(),
              HasSubstr("device_index is -1"));
  EXPECT_TRUE(read_cuda_ipc_ref(RefBuffer(64, 64, 0).get()).ok());
}

TEST(CudaIpcImport, OpenRejectsHandleBytesOfTheWrongLengthBeforeCallingCuda) {
  const std::vector<std::byte> short_handle(63), handle(64), long_handle(200);
  auto a = CudaIpcImport::open(short_handle, handle, 0, 1, nullptr);
  EXPECT_EQ(a.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("memory handle is 63 bytes"));
  auto b = CudaIpcImport::open(handle, long_handle, 0, 1, nullptr);
  EXPECT_THAT(b.status().message(), HasSubstr("event handle is 200 bytes"));
  auto c = CudaIpcImport::open({}, handle, 0, 1, nullptr);
  EXPECT_THAT(c.status().message(), HasSubstr("memory handle is 0 bytes"));
}

TEST(CudaIpcExporter, ReleaseOfAnAllocationItNeverExportedIsRejected) {
  CudaIpcExporter exporter;
  auto status = exporter.release(5);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("allocation 5 is not exported"));
  EXPECT_EQ(exporter.live_count(), 0u);
}

// --- on a GPU ---

class CudaIpcOnDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      GTEST_SKIP() << "no CUDA device: cudaGetDeviceCount: " << cudaGetErrorString(err);
    }
    if (count == 0) GTEST_SKIP() << "no CUDA device: cudaGetDeviceCount found none";
    device_count_ = count;
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
  }

  // Copies `length` device bytes at `device` to the host through stream_ (which open() made wait
  // for the producer's event).
  std::vector<uint8_t> read_back(const void* device, size_t length) {
    std::vector<uint8_t> host(length);
    EXPECT_EQ(cudaMemcpyAsync(host.data(), device, length, cudaMemcpyDeviceToHost, stream_),
              cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    return host;
  }

  // Fresh device memory still works: allocate, write, read back, free.
  void expect_device_usable() {
    const std::vector<uint8_t> pattern = testing::cuda_test_pattern(1 << 20, 99);
    void* fresh = nullptr;
    ASSERT_EQ(cudaMalloc(&fresh, pattern.size()), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(fresh, pattern.data(), pattern.size(), cudaMemcpyHostToDevice),
              cudaSuccess);
    std::vector<uint8_t> back(pattern.size());
    ASSERT_EQ(cudaMemcpy(back.data(), fresh, back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(back, pattern);
    EXPECT_EQ(cudaFree(fresh), cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  }

  int device_count_ = 0;
  cudaStream_t stream_ = nullptr;
};

// cuda_ipc_test_exporter running in its own process, connected by a SEQPACKET socketpair.
class ExporterProcess {
 public:
  ExporterProcess(size_t bytes, uint32_t seed) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
    socket_ = sv[0];
    // The child's end must survive exec; the parent's end must not leak into the child.
    ::fcntl(sv[1], F_SETFD, 0);
    const std::string fd = std::to_string(sv[1]);
    const std::string size = std::to_string(bytes);
    const std::string seed_text = std::to_string(seed);
    char* argv[] = {const_cast<char*>(PIO_CUDA_IPC_TEST_EXPORTER), const_cast<char*>(fd.c_str()),
                    const_cast<char*>(size.c_str()), const_cast<char*>(seed_text.c_str()), nullptr};
    if (::posix_spawn(&pid_, PIO_CUDA_IPC_TEST_EXPORTER, nullptr, nullptr, argv, environ) != 0) {
      pid_ = -1;
    }
    ::close(sv[1]);
  }
  ExporterProcess(const ExporterProcess&) = delete;
  ExporterProcess& operator=(const ExporterProcess&) = delete;
  ~ExporterProcess() {
    if (socket_ >= 0) ::close(socket_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return socket_ >= 0 && pid_ > 0; }
  bool still_running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

  // The next verified Envelope from the exporter; empty when it closed or sent garbage. The
  // poll limit only keeps a broken exporter from hanging the suite.
  std::vector<uint8_t> receive() {
    pollfd p{socket_, POLLIN, 0};
    if (::poll(&p, 1, 120'000) != 1) return {};
    std::vector<uint8_t> packet(64 * 1024);
    const ssize_t n = ::recv(socket_, packet.data(), packet.size(), 0);
    if (n <= 0) return {};
    packet.resize(static_cast<size_t>(n));
    flatbuffers::Verifier verifier(packet.data(), packet.size());
    if (!wire::VerifyEnvelopeBuffer(verifier)) return {};
    return packet;
  }

  bool send(const flatbuffers::FlatBufferBuilder& fbb) {
    return ::send(socket_, fbb.GetBufferPointer(), fbb.GetSize(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(fbb.GetSize());
  }

  // Asks the exporter to release `allocation_id`; returns its answer (an Error envelope).
  std::vector<uint8_t> release(uint64_t allocation_id) {
    flatbuffers::FlatBufferBuilder fbb;
    CudaIpcExport handles;
    handles.allocation_id = allocation_id;
    const auto cuda = build_cuda_ipc_ref(fbb, handles, 0);
    const auto name = fbb.CreateString("pattern");
    wire::TensorDescBuilder desc(fbb);
    desc.add_name(name);
    desc.add_device(wire::Device::Cuda);
    desc.add_cuda(cuda);
    const auto tensors = fbb.CreateVector(std::vector{desc.Finish()});
    const auto release = wire::CreateRelease(fbb, tensors);
    wire::FinishEnvelopeBuffer(
        fbb, wire::CreateEnvelope(fbb, 2, wire::Message::Release, release.Union()));
    if (!send(fbb)) return {};
    return receive();
  }

  // Closes our end, so the exporter leaves its loop; returns its wait status.
  int finish() {
    ::close(std::exchange(socket_, -1));
    int status = -1;
    ::waitpid(std::exchange(pid_, -1), &status, 0);
    return status;
  }

  void kill_now() {
    ::kill(pid_, SIGKILL);
    ::waitpid(std::exchange(pid_, -1), nullptr, 0);
  }

 private:
  int socket_ = -1;
  pid_t pid_ = -1;
};

// The exported tensor from the exporter's first packet.
struct ReceivedTensor {
  CudaTensorRef ref;
  uint64_t length = 0;
};

std::optional<ReceivedTensor> receive_tensor(ExporterProcess& exporter) {
  const std::vector<uint8_t> packet = exporter.receive();
  if (packet.empty()) return std::nullopt;
  const auto* result = wire::GetEnvelope(packet.data())->message_as_Result();
  if (result == nullptr || result->outputs() == nullptr || result->outputs()->size() != 1) {
    return std::nullopt;
  }
  const wire::TensorDesc* desc = result->outputs()->Get(0);
  if (desc->device() != wire::Device::Cuda) return std::nullopt;
  auto ref = read_cuda_ipc_ref(desc->cuda());
  if (!ref.ok()) return std::nullopt;
  return ReceivedTensor{*ref, desc->length()};
}

TEST_F(CudaIpcOnDevice, ChildExportsParentReadsInPlaceAndReleases) {
  constexpr size_t kBytes = (1 << 20) + 123;
  constexpr uint32_t kSeed = 7;
  ExporterProcess exporter(kBytes, kSeed);
  ASSERT_TRUE(exporter.started());
  const auto tensor = receive_tensor(exporter);
  ASSERT_TRUE(tensor.has_value()) << "no valid handles from the exporter (see its stderr)";
  ASSERT_EQ(tensor->length, kBytes);

  auto imported = CudaIpcImport::open(tensor->ref.handles, stream_);
  ASSERT_TRUE(imported.ok()) << imported.status().to_string();
  EXPECT_GE(imported->size(), kBytes);
  EXPECT_EQ(imported->allocation_id(), tensor->ref.handles.allocation_id);
  // The peer's offsets are checked against the allocation before the GPU is sent there.
  EXPECT_EQ(imported->range(0, imported->size() + 1).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(imported->range(UINT64_MAX - 1, 16).status().code(), ErrorCode::kInvalidArgument);
  auto range = imported->range(tensor->ref.offset, tensor->length);
  ASSERT_TRUE(range.ok()) << range.status().to_string();

  // No copy into our own memory first: the GPU reads the exporter's allocation itself.
  EXPECT_EQ(read_back(*range, kBytes), testing::cuda_test_pattern(kBytes, kSeed));
  // Until our Release the exporter holds on to the memory (and stays alive to serve it).
  EXPECT_TRUE(exporter.still_running());

  ASSERT_TRUE(imported->close().ok());
  EXPECT_FALSE(imported->is_open());
  const std::vector<uint8_t> answer = exporter.release(tensor->ref.handles.allocation_id);
  ASSERT_FALSE(answer.empty());
  const auto* released = wire::GetEnvelope(answer.data())->message_as_Error();
  ASSERT_NE(released, nullptr);
  EXPECT_EQ(released->code(), wire::ErrorCode::Ok) << released->message()->str();
  EXPECT_THAT(released->message()->str(), HasSubstr("0 live"));

  // A second Release of the same allocation is refused by the exporter, not a double free.
  const std::vector<uint8_t> again = exporter.release(tensor->ref.handles.allocation_id);
  ASSERT_FALSE(again.empty());
  const auto* refused = wire::GetEnvelope(again.data())->message_as_Error();
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->code(), wire::ErrorCode::InvalidArgument);

  const int status = exporter.finish();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  expect_device_usable();
}

TEST_F(CudaIpcOnDevice, ParentKeepsWorkingWhenTheExporterIsKilledWhileTheHandleIsOpen) {
  constexpr size_t kBytes = 4 << 20;
  ExporterProcess exporter(kBytes, 11);
  ASSERT_TRUE(exporter.started());
  const auto tensor = receive_tensor(exporter);
  ASSERT_TRUE(tensor.has_value()) << "no valid handles from the exporter (see its stderr)";
  auto imported = CudaIpcImport::open(tensor->ref.handles, stream_);
  ASSERT_TRUE(imported.ok()) << imported.status().to_string();
  auto range = imported->range(tensor->ref.offset, tensor->length);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(read_back(*range, kBytes), testing::cuda_test_pattern(kBytes, 11));

  exporter.kill_now();
  // The import is still open; whatever its memory now holds, this process's GPU work goes on.
  expect_device_usable();
  // Closing a handle whose exporter is gone may report an error, but must not break the device.
  imported->close().ignore();
  EXPECT_FALSE(imported->is_open());
  expect_device_usable();
}

TEST_F(CudaIpcOnDevice, GarbageHandlesAreAnErrorNotACrash) {
  std::mt19937 rng(5);
  std::vector<std::byte> mem(kCudaIpcHandleBytes), event(kCudaIpcHandleBytes);
  for (auto& b : mem) b = static_cast<std::byte>(rng());
  for (auto& b : event) b = static_cast<std::byte>(rng());
  auto imported = CudaIpcImport::open(mem, event, 0, 1, stream_);
  EXPECT_FALSE(imported.ok());
  EXPECT_THAT(imported.status().message(), HasSubstr("cudaIpcOpen"));
  expect_device_usable();
}

TEST_F(CudaIpcOnDevice, ImportRejectsADeviceIndexThisProcessDoesNotHave) {
  const CudaIpcExport e = sample_export();
  for (const int device : {-1, device_count_, 1000}) {
    auto imported = CudaIpcImport::open(e.mem_handle, e.event_handle, device, 1, stream_);
    EXPECT_EQ(imported.status().code(), ErrorCode::kInvalidArgument) << device;
    EXPECT_THAT(imported.status().message(), HasSubstr("device index"));
  }
}

TEST_F(CudaIpcOnDevice, ExportTakesOnlyTheStartOfADeviceAllocation) {
  void* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, 4096), cudaSuccess);
  CudaIpcExporter exporter;
  auto inside = exporter.export_allocation(static_cast<std::byte*>(device) + 256, 256, stream_);
  EXPECT_EQ(inside.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(inside.status().message(), HasSubstr("256 bytes into its allocation"));
  auto too_big = exporter.export_allocation(device, 8192, stream_);
  EXPECT_EQ(too_big.status().code(), ErrorCode::kInvalidArgument);
  std::vector<std::byte> host(4096);
  auto not_device = exporter.export_allocation(host.data(), host.size(), stream_);
  EXPECT_EQ(not_device.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(exporter.live_count(), 0u);

  auto exported = exporter.export_allocation(device, 4096, stream_);
  ASSERT_TRUE(exported.ok()) << exported.status().to_string();
  EXPECT_EQ(exported->device_index, 0);
  EXPECT_EQ(exporter.live_count(), 1u);
  EXPECT_TRUE(exporter.release(exported->allocation_id).ok());  // frees `device`
  EXPECT_EQ(exporter.release(exported->allocation_id).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(exporter.live_count(), 0u);
  expect_device_usable();
}

}  // namespace
}  // namespace pio::ipc
