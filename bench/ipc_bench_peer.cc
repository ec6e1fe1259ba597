// bench_ipc_peer: the worker end of bench_ipc (see ipc_bench_protocol.h).
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ipc_bench_protocol.h"
#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/tensor_view.h"

namespace {

using namespace pio;

[[noreturn]] void die(const Status& s) {
  std::fprintf(stderr, "bench_ipc_peer: %s\n", s.to_string().c_str());
  std::_Exit(2);
}

template <typename T>
T must(Result<T> r) {
  if (!r.ok()) die(r.status());
  return std::move(r).value();
}

void send_or_die(ipc::Channel& channel, flatbuffers::FlatBufferBuilder& fbb) {
  Status s =
      channel.send(ipc::builder_bytes(fbb), {}, ipc::deadline_after(std::chrono::seconds(10)));
  if (!s.ok()) die(s);
}

}  // namespace

int main() {
  ipc::ShmArena arena = must(ipc::ShmArena::map_existing(UniqueFd(4), 4096));
  ipc::ArenaLayout layout = must(ipc::ArenaLayout::read_from(arena));
  ipc::Channel channel =
      must(ipc::Channel::create(UniqueFd(3), arena, layout, ipc::ChannelSide::kWorker));
  UniqueFd raw_socket(5);
  auto* futex = static_cast<bench::FutexPage*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, 6, 0));
  if (futex == MAP_FAILED) die(errno_status("mmap futex page", errno));
  const auto out_ring = layout.ring_worker_to_host();
  ipc::ShmRing ring = must(ipc::ShmRing::create(out_ring.offset, out_ring.size));
  const ipc::RegionBounds in_bounds{arena.data(), layout.ring_host_to_worker().offset,
                                    layout.ring_host_to_worker().size};

  ipc::InboundMessage in;
  flatbuffers::FlatBufferBuilder fbb;
  for (;;) {
    Status s = channel.receive(&in, ipc::Deadline::max());
    const int64_t received_at = bench::monotonic_ns();
    if (s.code() == ErrorCode::kUnavailable) return 0;
    if (!s.ok()) die(s);
    fbb.Clear();
    const wire::Envelope& e = in.envelope();
    switch (e.message_type()) {
      case wire::Message::Heartbeat:
        ipc::finish_envelope(
            fbb, e.request_id(), wire::Message::Heartbeat,
            wire::CreateHeartbeat(fbb, e.message_as_Heartbeat()->sequence(), true).Union());
        send_or_die(channel, fbb);
        break;
      case wire::Message::Release:
        for (const auto* t : *e.message_as_Release()->tensors()) {
          Status r = ring.release(t->offset(), t->length());
          if (!r.ok()) die(r);
        }
        break;
      case wire::Message::Shutdown:
        return 0;
      case wire::Message::Infer: {
        const auto* infer = e.message_as_Infer();
        const std::string command = infer->command() ? infer->command()->str() : "";
        const long long arg = infer->params_json() ? std::atoll(infer->params_json()->c_str()) : 0;
        if (command == bench::kConsume) {
          // The worker holds a readable view once the descriptor validates.
          auto view = ipc::validate_tensor_desc(infer->inputs()->Get(0), wire::Ring::HostToWorker,
                                                in_bounds);
          if (!view.ok()) die(view.status());
          ipc::finish_envelope(fbb, e.request_id(), wire::Message::Result,
                               wire::CreateResultDirect(fbb, nullptr, nullptr).Union());
          send_or_die(channel, fbb);
        } else if (command == bench::kProduce) {
          const auto bytes = static_cast<uint64_t>(arg);
          ipc::RingSlot slot = must(ring.allocate(bytes));
          std::memset(arena.data() + slot.offset, 0x5a, bytes);  // the plugin writes its output
          const int64_t shape[] = {static_cast<int64_t>(bytes)};
          // Worker-local time from the request's arrival to the output being written.
          const int64_t write_ns = bench::monotonic_ns() - received_at;
          auto desc = must(ipc::build_tensor_desc(fbb, "out", wire::DType::U8, shape,
                                                  wire::Ring::WorkerToHost, slot));
          std::vector<flatbuffers::Offset<wire::TensorDesc>> outs{desc};
          const std::string stamp = std::to_string(write_ns);
          ipc::finish_envelope(fbb, e.request_id(), wire::Message::Result,
                               wire::CreateResultDirect(fbb, &outs, stamp.c_str()).Union());
          send_or_die(channel, fbb);
        } else if (command == bench::kSocketPingPong) {
          char b = 0;
          for (long long i = 0; i < arg; ++i) {
            if (read(raw_socket.get(), &b, 1) != 1 || write(raw_socket.get(), &b, 1) != 1) {
              die(errno_status("raw socket ping-pong", errno));
            }
          }
        } else if (command == bench::kFutexPingPong) {
          for (long long i = 1; i <= arg; ++i) {
            bench::futex_await(&futex->ping, &futex->ping_sleeping, static_cast<uint32_t>(i));
            bench::futex_post(&futex->pong, &futex->pong_sleeping, static_cast<uint32_t>(i));
          }
        } else if (command == bench::kFutexAlwaysWakePingPong) {
          for (long long i = 1; i <= arg; ++i) {
            bench::futex_await(&futex->ping, &futex->ping_sleeping, static_cast<uint32_t>(i));
            bench::futex_post_always_wake(&futex->pong, static_cast<uint32_t>(i));
          }
        }
        break;
      }
      default:
        break;
    }
  }
}
