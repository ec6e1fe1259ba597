// ipc_test_peer: the worker end of a channel for the ipc tests, run as a real second process.
// fd 3 is its end of the control socket, fd 4 the arena memfd. argv[1] is the mode:
//   echo           send every envelope back unchanged, with the descriptors it carried
//   die-mid-write  write half a lane slot without publishing it, then die by SIGKILL
//   scribble       send valid Result envelopes whose tensors lie in the worker->host ring while
//                  a second thread writes random bytes over the whole arena, forever
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/shm_arena.h"

namespace {

using pio::ipc::ArenaLayout;
using pio::ipc::Channel;
using pio::ipc::ChannelSide;
using pio::ipc::InboundMessage;
using pio::ipc::ShmArena;

[[noreturn]] void die(const pio::Status& s) {
  std::fprintf(stderr, "ipc_test_peer: %s\n", s.to_string().c_str());
  std::_Exit(2);
}

int run_echo(Channel& channel) {
  InboundMessage in;
  for (;;) {
    pio::Status s = channel.receive(&in, pio::ipc::Deadline::max());
    if (s.code() == pio::ErrorCode::kUnavailable) return 0;  // host closed
    if (!s.ok()) die(s);
    std::vector<int> fds;
    for (auto& fd : in.fds()) fds.push_back(fd.get());
    const bool shutdown = in.type() == pio::wire::Message::Shutdown;
    s = channel.send(in.bytes(), fds, pio::ipc::deadline_after(std::chrono::seconds(10)));
    if (!s.ok()) die(s);
    if (shutdown) return 0;
  }
}

int run_die_mid_write(ShmArena& arena, const ArenaLayout& layout) {
  // The first slot of the worker->host lane: a length and half the payload, head never published.
  std::byte* slot =
      arena.data() + layout.lane_worker_to_host().offset + pio::ipc::MessageLane::kSlotsOffset;
  const uint32_t header[2] = {100, 1};
  std::memcpy(slot, header, sizeof(header));
  std::memset(slot + 16, 0xab, 50);
  kill(getpid(), SIGKILL);
  return 1;
}

int run_scribble(Channel& first, ShmArena& arena, const ArenaLayout& layout) {
  std::thread scribbler([&] {
    std::mt19937_64 rng(1234);
    auto* words = reinterpret_cast<uint64_t*>(arena.data());
    const size_t n = arena.size() / sizeof(uint64_t);
    for (;;) {
      for (int i = 0; i < 256; ++i) {
        std::atomic_ref<uint64_t>(words[rng() % n]).store(rng(), std::memory_order_relaxed);
      }
      // Sometimes a plausible message number in a slot, to reach the checks behind it.
      const uint64_t slot = rng() % layout.config().lane_slots;
      const uint64_t at = layout.lane_worker_to_host().offset +
                          pio::ipc::MessageLane::kSlotsOffset +
                          slot * layout.config().lane_slot_bytes + 8;
      std::atomic_ref<uint64_t>(words[at / 8]).store(rng() % 130, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  scribbler.detach();
  const auto ring = layout.ring_worker_to_host();
  std::mt19937_64 rng(99);
  std::optional<Channel> replacement;
  Channel* channel = &first;
  for (uint64_t id = 1;; ++id) {
    flatbuffers::FlatBufferBuilder fbb;
    const uint64_t length = (rng() % 64 + 1) * 4;
    const uint64_t offset = rng() % (ring.size + 4096);  // sometimes out of bounds on purpose
    std::vector<int64_t> shape{static_cast<int64_t>(length / 4)};
    auto desc = pio::wire::CreateTensorDescDirect(fbb, "out", pio::wire::DType::F32, &shape,
                                                  pio::wire::Device::Cpu,
                                                  pio::wire::Ring::WorkerToHost, offset, length);
    std::vector<flatbuffers::Offset<pio::wire::TensorDesc>> outs{desc};
    auto result = pio::wire::CreateResultDirect(fbb, &outs, nullptr);
    pio::ipc::finish_envelope(fbb, id, pio::wire::Message::Result, result.Union());
    pio::Status s = channel->send(pio::ipc::builder_bytes(fbb), {},
                                  pio::ipc::deadline_after(std::chrono::milliseconds(20)));
    if (s.code() == pio::ErrorCode::kUnavailable) return 0;  // the host is done
    if (channel->broken()) {
      // Our own lane was scribbled over too; start again with fresh indices.
      auto fresh = Channel::create(pio::UniqueFd(dup(channel->socket_fd())), arena, layout,
                                   ChannelSide::kWorker);
      if (!fresh.ok()) die(fresh.status());
      replacement.reset();
      replacement.emplace(std::move(*fresh));
      channel = &*replacement;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ipc_test_peer MODE (fd 3 = socket, fd 4 = arena)\n");
    return 2;
  }
  const std::string_view mode = argv[1];
  auto arena = ShmArena::map_existing(pio::UniqueFd(4), 4096);
  if (!arena.ok()) die(arena.status());
  auto layout = ArenaLayout::read_from(*arena);
  if (!layout.ok()) die(layout.status());
  if (mode == "die-mid-write") return run_die_mid_write(*arena, *layout);
  auto channel = Channel::create(pio::UniqueFd(3), *arena, *layout, ChannelSide::kWorker);
  if (!channel.ok()) die(channel.status());
  if (mode == "echo") return run_echo(*channel);
  if (mode == "scribble") return run_scribble(*channel, *arena, *layout);
  std::fprintf(stderr, "ipc_test_peer: unknown mode %s\n", argv[1]);
  return 2;
}
