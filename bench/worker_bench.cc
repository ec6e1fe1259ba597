// bench_worker: what the process boundary costs a plugin call, without the sandbox (the host
// benchmark measures the sandboxed path). The same echo plugin code is called three ways in one
// run: directly in this process (InProcessPlugin, the baseline), and through a real pio-worker
// child over the control channel and the shared-memory rings. Compare the ratios, not the times.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/socket_packet.h"
#include "pio/ipc/tensor_view.h"
#include "pio/plugin_sdk/in_process_plugin.h"

namespace {

using namespace pio;

// A pio-worker child running echo, with the host's end of its channel. Aborts on any failure: a
// benchmark that cannot run has nothing to report.
class Worker {
 public:
  Worker() {
    ipc::ArenaConfig config;
    config.host_to_worker_ring_bytes = 8u << 20;
    config.worker_to_host_ring_bytes = 8u << 20;
    auto layout = ipc::ArenaLayout::compute(config);
    PIO_CHECK(layout.ok());
    layout_ = *layout;
    auto arena = ipc::ShmArena::create("pio-bench-worker", layout->total_size());
    PIO_CHECK(arena.ok());
    arena_.emplace(std::move(*arena));
    ipc::Channel::prepare_arena(*arena_, *layout_);
    auto ring = ipc::ShmRing::create(layout->ring_host_to_worker().offset,
                                     layout->ring_host_to_worker().size);
    PIO_CHECK(ring.ok());
    inputs_.emplace(std::move(*ring));
    auto sockets = ipc::make_packet_socketpair();
    PIO_CHECK(sockets.ok());
    UniqueFd stage2(memfd_create("pio-bench-stage2", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    PIO_CHECK(stage2.valid());
    PIO_CHECK(fcntl(stage2.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    UniqueFd s(fcntl(sockets->second.get(), F_DUPFD_CLOEXEC, 100));
    UniqueFd a(fcntl(arena_->fd(), F_DUPFD_CLOEXEC, 100));
    UniqueFd f(fcntl(stage2.get(), F_DUPFD_CLOEXEC, 100));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, s.get(), 3);
    posix_spawn_file_actions_adddup2(&actions, a.get(), 4);
    posix_spawn_file_actions_adddup2(&actions, f.get(), 5);
    posix_spawn_file_actions_addclosefrom_np(&actions, 6);
    std::string worker = PIO_BENCH_WORKER_PATH, plugin = PIO_BENCH_ECHO_PLUGIN;
    char* argv[] = {worker.data(), plugin.data(), nullptr};
    char* envp[] = {nullptr};
    PIO_CHECK(posix_spawn(&pid_, worker.c_str(), &actions, nullptr, argv, envp) == 0);
    posix_spawn_file_actions_destroy(&actions);
    sockets->second.reset();
    auto channel =
        ipc::Channel::create(std::move(sockets->first), *arena_, *layout_, ipc::ChannelSide::kHost);
    PIO_CHECK(channel.ok());
    channel_.emplace(std::move(*channel));
    PIO_CHECK(receive().type() == wire::Message::Hello);
    flatbuffers::FlatBufferBuilder fbb;
    ipc::finish_envelope(fbb, next_id_++, wire::Message::Initialize,
                         wire::CreateInitializeDirect(fbb, "{}").Union());
    send(fbb);
    PIO_CHECK(receive().type() == wire::Message::Result);
  }
  ~Worker() {
    channel_.reset();
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  // One Infer of `bytes` of F32 through the rings, the output read and released.
  float infer(size_t bytes, const std::byte* data) {
    auto slot = inputs_->allocate(bytes);
    PIO_CHECK(slot.ok());
    std::memcpy(arena_->data() + slot->offset, data, bytes);
    flatbuffers::FlatBufferBuilder fbb;
    const int64_t shape[] = {static_cast<int64_t>(bytes / sizeof(float))};
    auto desc =
        ipc::build_tensor_desc(fbb, "x", wire::DType::F32, shape, wire::Ring::HostToWorker, *slot);
    PIO_CHECK(desc.ok());
    std::vector<flatbuffers::Offset<wire::TensorDesc>> descs = {*desc};
    ipc::finish_envelope(fbb, next_id_++, wire::Message::Infer,
                         wire::CreateInferDirect(fbb, &descs).Union());
    send(fbb);
    ipc::InboundMessage& in = receive();
    PIO_CHECK(in.type() == wire::Message::Result);
    PIO_CHECK(inputs_->release(*slot).ok());
    const auto* out = in.envelope().message_as_Result()->outputs()->Get(0);
    auto view = ipc::validate_tensor_desc(out, wire::Ring::WorkerToHost,
                                          {arena_->data(), layout_->ring_worker_to_host().offset,
                                           layout_->ring_worker_to_host().size});
    PIO_CHECK(view.ok());
    float first;
    std::memcpy(&first, view->data, sizeof(first));
    flatbuffers::FlatBufferBuilder release;
    std::vector<flatbuffers::Offset<wire::TensorDesc>> released = {
        wire::CreateTensorDescDirect(release, "x", wire::DType::F32, nullptr, wire::Device::Cpu,
                                     wire::Ring::WorkerToHost, view->offset, view->length)};
    ipc::finish_envelope(release, next_id_++, wire::Message::Release,
                         wire::CreateReleaseDirect(release, &released).Union());
    send(release);
    return first;
  }

  // One streamed generation of `prompt`; returns the number of chunks.
  int generate(const std::string& prompt) {
    flatbuffers::FlatBufferBuilder fbb;
    auto params = wire::CreateSamplingParamsDirect(fbb, static_cast<uint32_t>(prompt.size()));
    const uint64_t id = next_id_++;
    ipc::finish_envelope(
        fbb, id, wire::Message::Generate,
        wire::CreateGenerateDirect(fbb, prompt.c_str(), nullptr, nullptr, params).Union());
    send(fbb);
    for (int chunks = 1;; ++chunks) {
      ipc::InboundMessage& in = receive();
      PIO_CHECK(in.type() == wire::Message::TokenChunk);
      if (in.envelope().message_as_TokenChunk()->finish_reason() != wire::FinishReason::None) {
        return chunks;
      }
    }
  }

 private:
  ipc::InboundMessage& receive() {
    PIO_CHECK(channel_->receive(&in_, ipc::deadline_after(std::chrono::seconds(10))).ok());
    return in_;
  }
  void send(flatbuffers::FlatBufferBuilder& fbb) {
    PIO_CHECK(channel_->send(ipc::builder_bytes(fbb), {}, ipc::Deadline::max()).ok());
  }

  std::optional<ipc::ArenaLayout> layout_;
  std::optional<ipc::ShmArena> arena_;
  std::optional<ipc::ShmRing> inputs_;
  std::optional<ipc::Channel> channel_;
  ipc::InboundMessage in_;
  uint64_t next_id_ = 1;
  pid_t pid_ = -1;
};

void BM_InferInProcess(benchmark::State& state) {
  auto plugin = sdk::InProcessPlugin::load(PIO_BENCH_ECHO_PLUGIN, "{}", 8u << 20);
  PIO_CHECK(plugin.ok());
  const size_t bytes = static_cast<size_t>(state.range(0));
  std::vector<float> x(bytes / sizeof(float), 1.0f);
  const int64_t shape[] = {static_cast<int64_t>(x.size())};
  const pio_tensor_view input{
      sizeof(pio_tensor_view), "x", PIO_DTYPE_F32, shape, 1, x.data(), bytes};
  for (auto _ : state) {
    auto answer = (*plugin)->infer("", "", std::span(&input, 1));
    PIO_CHECK(answer.ok());
    benchmark::DoNotOptimize(answer->outputs[0].bytes.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_InferThroughWorker(benchmark::State& state) {
  Worker worker;
  const size_t bytes = static_cast<size_t>(state.range(0));
  std::vector<float> x(bytes / sizeof(float), 1.0f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(worker.infer(bytes, reinterpret_cast<const std::byte*>(x.data())));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_GenerateInProcess(benchmark::State& state) {
  auto plugin = sdk::InProcessPlugin::load(PIO_BENCH_ECHO_PLUGIN);
  PIO_CHECK(plugin.ok());
  const std::string prompt(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    int chunks = 0;
    auto done = (*plugin)->generate(prompt, static_cast<uint32_t>(prompt.size()),
                                    [&](std::span<const int32_t>, std::string_view) {
                                      ++chunks;
                                      return true;
                                    });
    PIO_CHECK(done.ok());
    benchmark::DoNotOptimize(chunks);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_GenerateThroughWorker(benchmark::State& state) {
  Worker worker;
  const std::string prompt(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) benchmark::DoNotOptimize(worker.generate(prompt));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

BENCHMARK(BM_InferInProcess)->Arg(64)->Arg(1 << 20)->UseRealTime();
BENCHMARK(BM_InferThroughWorker)->Arg(64)->Arg(1 << 20)->UseRealTime();
BENCHMARK(BM_GenerateInProcess)->Arg(64)->UseRealTime();
BENCHMARK(BM_GenerateThroughWorker)->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
