// bench_ipc: the control channel and the tensor rings between two real processes, each figure
// next to its baseline measured in the same run:
//   ChannelRoundTrip        empty request through the channel, vs RawSocketPingPong and the two
//                           raw futex ping-pongs (1 byte / one word, same two processes)
//   SendTensor/64MiB        host->worker until the worker holds a validated view, vs Memcpy/64MiB
//   OutputHandover/N        request to a validated view of the worker-written output, minus the
//                           worker's own time writing it: delivery + hand-over, which must not
//                           grow with the size (zero copy)
//   Summary                 the ratios the targets are stated in
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ipc_bench_protocol.h"
#include "latency_samples.h"
#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/socket_packet.h"
#include "pio/ipc/tensor_view.h"

namespace {

using pio::bench::figures;
using pio::bench::Samples;

using namespace pio;
using namespace std::chrono_literals;

void check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_ipc: %s: %s\n", what, s.to_string().c_str());
    std::exit(2);
  }
}

// The worker process and everything shared with it, started once.
struct Peer {
  std::unique_ptr<ipc::ShmArena> arena;
  std::optional<ipc::ArenaLayout> layout;
  std::unique_ptr<ipc::Channel> channel;
  std::unique_ptr<ipc::ShmRing> ring;  // host->worker tensors
  UniqueFd raw_socket;
  bench::FutexPage* futex = nullptr;
  pid_t pid = -1;
  uint64_t next_id = 1;

  static Peer& get() {
    static Peer peer = start();
    return peer;
  }

  static Peer start() {
    Peer p;
    ipc::ArenaConfig config;
    config.host_to_worker_ring_bytes = bench::kArenaRingBytes;
    config.worker_to_host_ring_bytes = bench::kArenaRingBytes;
    auto layout = ipc::ArenaLayout::compute(config);
    check(layout.status(), "layout");
    p.layout = *layout;
    auto arena = ipc::ShmArena::create("bench-arena", layout->total_size());
    check(arena.status(), "arena");
    p.arena = std::make_unique<ipc::ShmArena>(std::move(*arena));
    ipc::Channel::prepare_arena(*p.arena, *p.layout);
    auto control = ipc::make_packet_socketpair();
    check(control.status(), "socketpair");
    int raw[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, raw) != 0) std::exit(2);
    UniqueFd futex_fd(memfd_create("bench-futex", MFD_CLOEXEC));
    if (ftruncate(futex_fd.get(), 4096) != 0) std::exit(2);
    p.futex = static_cast<bench::FutexPage*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, futex_fd.get(), 0));
    const std::string exe =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "bench_ipc_peer").string();
    const int fds[] = {control->second.get(), p.arena->fd(), raw[1], futex_fd.get()};
    p.pid = fork();
    if (p.pid == 0) {
      int high[4];
      for (int i = 0; i < 4; ++i) high[i] = fcntl(fds[i], F_DUPFD, 100);
      for (int i = 0; i < 4; ++i) dup2(high[i], 3 + i);
      execl(exe.c_str(), exe.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(raw[1]);
    p.raw_socket.reset(raw[0]);
    auto channel = ipc::Channel::create(std::move(control->first), *p.arena, *p.layout,
                                        ipc::ChannelSide::kHost);
    check(channel.status(), "channel");
    p.channel = std::make_unique<ipc::Channel>(std::move(*channel));
    auto ring = ipc::ShmRing::create(p.layout->ring_host_to_worker().offset,
                                     p.layout->ring_host_to_worker().size);
    check(ring.status(), "ring");
    p.ring = std::make_unique<ipc::ShmRing>(std::move(*ring));
    return p;
  }

  void command(const char* name, const std::string& arg) {
    flatbuffers::FlatBufferBuilder fbb;
    ipc::finish_envelope(fbb, next_id++, wire::Message::Infer,
                         wire::CreateInferDirect(fbb, nullptr, name, arg.c_str()).Union());
    check(channel->send(ipc::builder_bytes(fbb)), "send command");
  }

  void receive(ipc::InboundMessage* in) {
    check(channel->receive(in, ipc::deadline_after(30s)), "receive");
  }
};

void report(benchmark::State& state, Samples& samples, const std::string& name) {
  const double p50 = samples.percentile(0.50), p99 = samples.percentile(0.99);
  state.counters["p50_us"] = p50;
  state.counters["p99_us"] = p99;
  figures()[name + ".p50_us"] = p50;
  figures()[name + ".p99_us"] = p99;
}

void BM_ChannelRoundTrip(benchmark::State& state) {
  Peer& peer = Peer::get();
  ipc::InboundMessage in;
  flatbuffers::FlatBufferBuilder fbb;
  Samples samples;
  for (auto _ : state) {
    const auto t0 = ipc::Clock::now();
    fbb.Clear();
    ipc::finish_envelope(fbb, peer.next_id++, wire::Message::Heartbeat,
                         wire::CreateHeartbeat(fbb, 1).Union());
    check(peer.channel->send(ipc::builder_bytes(fbb)), "send");
    peer.receive(&in);
    const auto d = ipc::Clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  report(state, samples, "channel_round_trip");
}

void BM_RawSocketPingPong(benchmark::State& state) {
  Peer& peer = Peer::get();
  const int64_t rounds = state.max_iterations;
  peer.command(bench::kSocketPingPong, std::to_string(rounds));
  Samples samples;
  char b = 1;
  for (auto _ : state) {
    const auto t0 = ipc::Clock::now();
    if (write(peer.raw_socket.get(), &b, 1) != 1 || read(peer.raw_socket.get(), &b, 1) != 1)
      std::exit(2);
    const auto d = ipc::Clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  report(state, samples, "raw_socket_ping_pong");
}

// Both futex variants between the same two processes: `always_wake` calls FUTEX_WAKE on every
// post (the ~2 us round trip the targets cite), the other wakes only a peer that announced it
// sleeps (a pure shared-memory ping-pong while both spin).
void run_futex_ping_pong(benchmark::State& state, bool always_wake, const std::string& name) {
  Peer& peer = Peer::get();
  std::memset(peer.futex, 0, sizeof(*peer.futex));
  const int64_t rounds = state.max_iterations;
  peer.command(always_wake ? bench::kFutexAlwaysWakePingPong : bench::kFutexPingPong,
               std::to_string(rounds));
  Samples samples;
  uint32_t i = 0;
  for (auto _ : state) {
    ++i;
    const auto t0 = ipc::Clock::now();
    if (always_wake) {
      bench::futex_post_always_wake(&peer.futex->ping, i);
    } else {
      bench::futex_post(&peer.futex->ping, &peer.futex->ping_sleeping, i);
    }
    bench::futex_await(&peer.futex->pong, &peer.futex->pong_sleeping, i);
    const auto d = ipc::Clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  report(state, samples, name);
}

void BM_RawFutexPingPong(benchmark::State& state) {
  run_futex_ping_pong(state, false, "raw_futex_ping_pong");
}

void BM_RawFutexAlwaysWakePingPong(benchmark::State& state) {
  run_futex_ping_pong(state, true, "raw_futex_always_wake_ping_pong");
}

// A private, pre-faulted source buffer for the tensor benchmarks.
std::vector<std::byte>& source(size_t bytes) {
  static std::vector<std::byte> buffer;
  if (buffer.size() < bytes) buffer.assign(bytes, std::byte{0x33});
  return buffer;
}

void BM_Memcpy(benchmark::State& state) {
  Peer& peer = Peer::get();
  const auto bytes = static_cast<size_t>(state.range(0));
  auto& src = source(bytes);
  // Into the same ring memory the tensor send writes to.
  std::byte* dst = peer.arena->data() + peer.layout->ring_host_to_worker().offset;
  Samples samples;
  for (auto _ : state) {
    const auto t0 = ipc::Clock::now();
    std::memcpy(dst, src.data(), bytes);
    benchmark::ClobberMemory();
    const auto d = ipc::Clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  report(state, samples, "memcpy_" + std::to_string(bytes >> 20) + "MiB");
}

void BM_SendTensor(benchmark::State& state) {
  Peer& peer = Peer::get();
  const auto bytes = static_cast<uint64_t>(state.range(0));
  auto& src = source(bytes);
  ipc::InboundMessage in;
  flatbuffers::FlatBufferBuilder fbb;
  Samples samples;
  const int64_t shape[] = {static_cast<int64_t>(bytes)};
  for (auto _ : state) {
    const auto t0 = ipc::Clock::now();
    auto slot = peer.ring->allocate(bytes);
    check(slot.status(), "allocate");
    std::memcpy(peer.arena->data() + slot->offset, src.data(), bytes);  // the one copy
    fbb.Clear();
    auto desc =
        ipc::build_tensor_desc(fbb, "x", wire::DType::U8, shape, wire::Ring::HostToWorker, *slot);
    check(desc.status(), "desc");
    std::vector<flatbuffers::Offset<wire::TensorDesc>> inputs{*desc};
    ipc::finish_envelope(fbb, peer.next_id++, wire::Message::Infer,
                         wire::CreateInferDirect(fbb, &inputs, bench::kConsume).Union());
    check(peer.channel->send(ipc::builder_bytes(fbb)), "send");
    peer.receive(&in);  // the worker validated its view and acknowledged
    const auto d = ipc::Clock::now() - t0;
    check(peer.ring->release(*slot), "release");
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  report(state, samples, "send_tensor_" + std::to_string(bytes >> 20) + "MiB");
}

void BM_OutputHandover(benchmark::State& state) {
  Peer& peer = Peer::get();
  const auto bytes = static_cast<uint64_t>(state.range(0));
  const auto& out_ring = peer.layout->ring_worker_to_host();
  const ipc::RegionBounds bounds{peer.arena->data(), out_ring.offset, out_ring.size};
  ipc::InboundMessage in;
  flatbuffers::FlatBufferBuilder fbb;
  Samples samples;
  for (auto _ : state) {
    const int64_t sent_at = bench::monotonic_ns();
    peer.command(bench::kProduce, std::to_string(bytes));
    // Poll the lane without sleeping, so the figure holds no scheduler wake-up of the host.
    for (;;) {
      auto got = peer.channel->try_receive(&in);
      check(got.status(), "try_receive");
      if (*got) break;
    }
    const auto* result = in.envelope().message_as_Result();
    auto view =
        ipc::validate_tensor_desc(result->outputs()->Get(0), wire::Ring::WorkerToHost, bounds);
    check(view.status(), "validate output");
    benchmark::DoNotOptimize(view->data[0]);
    const int64_t total = bench::monotonic_ns() - sent_at;
    // Each clock is read by one process only: the host's total minus the worker's own write time
    // is the request's delivery plus the output's hand-over.
    const int64_t write_ns = std::atoll(result->json()->c_str());
    const auto d = std::chrono::nanoseconds(total - write_ns);
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
    fbb.Clear();
    const int64_t shape[] = {static_cast<int64_t>(bytes)};
    auto desc = ipc::build_tensor_desc(fbb, "out", wire::DType::U8, shape, wire::Ring::WorkerToHost,
                                       view->slot());
    std::vector<flatbuffers::Offset<wire::TensorDesc>> t{*desc};
    ipc::finish_envelope(fbb, peer.next_id++, wire::Message::Release,
                         wire::CreateReleaseDirect(fbb, &t).Union());
    check(peer.channel->send(ipc::builder_bytes(fbb)), "release");
  }
  const std::string size = bytes >= (1 << 20) ? std::to_string(bytes >> 20) + "MiB"
                                              : std::to_string(bytes >> 10) + "KiB";
  report(state, samples, "output_handover_" + size);
}

void BM_Summary(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(figures().size());
  auto& f = figures();
  auto ratio = [&](const char* a, const char* b) { return f[b] > 0 ? f[a] / f[b] : 0.0; };
  state.counters["rt_vs_futex"] =
      ratio("channel_round_trip.p50_us", "raw_futex_always_wake_ping_pong.p50_us");
  state.counters["rt_vs_spin_futex"] =
      ratio("channel_round_trip.p50_us", "raw_futex_ping_pong.p50_us");
  state.counters["rt_vs_socket"] =
      ratio("channel_round_trip.p50_us", "raw_socket_ping_pong.p50_us");
  state.counters["send64_vs_memcpy"] = ratio("send_tensor_64MiB.p50_us", "memcpy_64MiB.p50_us");
  state.counters["handover_64M_vs_4K"] =
      ratio("output_handover_64MiB.p50_us", "output_handover_4KiB.p50_us");
  std::printf(
      "\nipc summary (p50, same run):\n"
      "  channel round trip    %8.2f us   raw futex %8.2f us (spin-only %.2f us)   raw socket "
      "%8.2f us\n"
      "                        ratio vs futex %.2f (target <= 2), vs spin-only futex %.2f\n"
      "  send 64 MiB tensor    %8.0f us   one memcpy %7.0f us   ratio %.2f (target <= 1.2)\n"
      "  output hand-over      4 KiB %.2f us   1 MiB %.2f us   64 MiB %.2f us   64M/4K %.2f "
      "(target ~1)\n",
      f["channel_round_trip.p50_us"], f["raw_futex_always_wake_ping_pong.p50_us"],
      f["raw_futex_ping_pong.p50_us"], f["raw_socket_ping_pong.p50_us"],
      ratio("channel_round_trip.p50_us", "raw_futex_always_wake_ping_pong.p50_us"),
      ratio("channel_round_trip.p50_us", "raw_futex_ping_pong.p50_us"),
      f["send_tensor_64MiB.p50_us"], f["memcpy_64MiB.p50_us"],
      ratio("send_tensor_64MiB.p50_us", "memcpy_64MiB.p50_us"), f["output_handover_4KiB.p50_us"],
      f["output_handover_1MiB.p50_us"], f["output_handover_64MiB.p50_us"],
      ratio("output_handover_64MiB.p50_us", "output_handover_4KiB.p50_us"));
}

BENCHMARK(BM_RawSocketPingPong)->UseManualTime()->Iterations(20000);
BENCHMARK(BM_RawFutexPingPong)->UseManualTime()->Iterations(20000);
BENCHMARK(BM_RawFutexAlwaysWakePingPong)->UseManualTime()->Iterations(20000);
BENCHMARK(BM_ChannelRoundTrip)->UseManualTime()->Iterations(20000);
BENCHMARK(BM_Memcpy)->UseManualTime()->Arg(64 << 20)->Iterations(60);
BENCHMARK(BM_SendTensor)->UseManualTime()->Arg(64 << 20)->Iterations(60);
BENCHMARK(BM_OutputHandover)
    ->UseManualTime()
    ->Arg(4 << 10)
    ->Arg(1 << 20)
    ->Arg(64 << 20)
    ->Iterations(200);
BENCHMARK(BM_Summary)->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  Peer& peer = Peer::get();
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(fbb, 0, wire::Message::Shutdown, wire::CreateShutdown(fbb).Union());
  (void)peer.channel->send(ipc::builder_bytes(fbb));
  int status = 0;
  waitpid(peer.pid, &status, 0);
  return 0;
}
