// The producer process of cuda_ipc_test.cc: allocates a device buffer, fills it with a known
// pattern, exports it and sends the handles to the test over a SEQPACKET socket; then frees the
// buffer only when the test's Release for it arrives.
//
//   cuda_ipc_test_exporter <socket fd> <bytes> <seed>
//
// Protocol (one flatbuffer Envelope per packet):
//   exporter -> test: Result { outputs: [TensorDesc U8 [bytes], device Cuda, cuda handles] }
//   test -> exporter: Release { tensors: [TensorDesc with the same cuda.allocation_id] }
//   exporter -> test: Error { code Ok (released) or the release's error, message: live count }
// and the exporter exits 0 when the test closes the socket.

#include <cuda_runtime_api.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_ipc_test_pattern.h"
#include "pio/ipc/cuda_ipc.h"
#include "pio/ipc/messages_generated.h"

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "cuda_ipc_test_exporter: %s\n", what.c_str());
  return 1;
}

bool send_envelope(int fd, flatbuffers::FlatBufferBuilder& fbb) {
  return ::send(fd, fbb.GetBufferPointer(), fbb.GetSize(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(fbb.GetSize());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return fail("usage: cuda_ipc_test_exporter <socket fd> <bytes> <seed>");
  const int fd = std::atoi(argv[1]);
  const size_t bytes = std::strtoull(argv[2], nullptr, 10);
  const auto seed = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));

  const std::vector<uint8_t> host = pio::ipc::testing::cuda_test_pattern(bytes, seed);
  void* device = nullptr;
  if (cudaMalloc(&device, bytes) != cudaSuccess) return fail("cudaMalloc failed");
  cudaStream_t stream = nullptr;
  if (cudaStreamCreate(&stream) != cudaSuccess) return fail("cudaStreamCreate failed");
  if (cudaMemcpyAsync(device, host.data(), bytes, cudaMemcpyHostToDevice, stream) != cudaSuccess) {
    return fail("cudaMemcpyAsync failed");
  }

  pio::ipc::CudaIpcExporter exporter;
  auto exported = exporter.export_allocation(device, bytes, stream);
  if (!exported.ok()) return fail(exported.status().to_string());

  {
    flatbuffers::FlatBufferBuilder fbb;
    const auto cuda = pio::ipc::build_cuda_ipc_ref(fbb, *exported, 0);
    const auto name = fbb.CreateString("pattern");
    const int64_t dims[] = {static_cast<int64_t>(bytes)};
    const auto shape = fbb.CreateVector(dims, 1);
    pio::wire::TensorDescBuilder desc(fbb);
    desc.add_name(name);
    desc.add_dtype(pio::wire::DType::U8);
    desc.add_shape(shape);
    desc.add_device(pio::wire::Device::Cuda);
    desc.add_length(bytes);
    desc.add_cuda(cuda);
    const auto descs = fbb.CreateVector(std::vector{desc.Finish()});
    const auto result = pio::wire::CreateResult(fbb, descs);
    pio::wire::FinishEnvelopeBuffer(
        fbb, pio::wire::CreateEnvelope(fbb, 1, pio::wire::Message::Result, result.Union()));
    if (!send_envelope(fd, fbb)) return fail("send of the handles failed");
  }

  // Serve Releases until the test closes its end (or kills this process).
  std::vector<uint8_t> packet(64 * 1024);
  for (;;) {
    const ssize_t n = ::recv(fd, packet.data(), packet.size(), 0);
    if (n == 0) break;
    if (n < 0) return fail("recv failed");
    flatbuffers::Verifier verifier(packet.data(), static_cast<size_t>(n));
    if (!pio::wire::VerifyEnvelopeBuffer(verifier)) return fail("invalid packet from the test");
    const auto* envelope = pio::wire::GetEnvelope(packet.data());
    const auto* release = envelope->message_as_Release();
    if (release == nullptr || release->tensors() == nullptr) return fail("expected a Release");
    pio::Status status;
    for (const auto* tensor : *release->tensors()) {
      if (tensor->cuda() == nullptr) {
        status = pio::invalid_argument_error("Release of a tensor without cuda handles");
        break;
      }
      status = exporter.release(tensor->cuda()->allocation_id());
      if (!status.ok()) break;
    }
    flatbuffers::FlatBufferBuilder fbb;
    const auto message =
        fbb.CreateString(std::to_string(exporter.live_count()) + " live; " + status.to_string());
    const auto error =
        pio::wire::CreateError(fbb, static_cast<pio::wire::ErrorCode>(status.code()), message);
    pio::wire::FinishEnvelopeBuffer(
        fbb, pio::wire::CreateEnvelope(fbb, envelope->request_id(), pio::wire::Message::Error,
                                       error.Union()));
    if (!send_envelope(fd, fbb)) return fail("send of the release answer failed");
  }
  if (cudaStreamDestroy(stream) != cudaSuccess) return fail("cudaStreamDestroy failed");
  return 0;
}
