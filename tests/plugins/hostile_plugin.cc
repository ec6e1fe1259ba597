// One hostile plugin per HOSTILE_MODE (tests/plugins/CMakeLists.txt builds each mode as its own
// library and manifest). Each attacks the host or breaks its worker in one way; the host tests
// check that the host stays up, the caller gets a clear typed error, and a healthy plugin beside
// it keeps answering. Outside its attack a hostile plugin behaves like a small echo plugin.
//
//   segv_infer        infer dereferences a null pointer
//   abort_load        load_model calls abort()
//   static_escape     a static constructor tries socket(AF_INET), socket(AF_UNIX) and fork();
//                     get_model_info reports what the kernel answered
//   spin_infer        infer loops forever, ignoring cancellation
//   memory_bomb       infer and generate_text touch memory until something stops it
//   fork_bomb         infer forks until fork fails, then aborts
//   garbage_packets   infer writes raw garbage packets onto the control socket
//   bad_descriptor    infer forges Results whose output descriptor points outside the ring
//   scribble          infer scribbles over the whole shared arena while answering
//   huge_output       infer asks for a 10 GiB output tensor
//   slow_drip         generate_text emits one character every 300 ms
//   crash_mid_stream  generate_text emits three tokens, then dereferences a null pointer
//   resume_crash      resumable generate_text writes its prompt to stderr (as a shared worker
//                     could write a tenant's data), emits up to the third token, then
//                     dereferences a null pointer: resumed after three tokens, it crashes again
//   exit_in_request   infer calls exit(0)
//   stall_reader      infer parks every other thread of the worker (its channel reader included)
//                     in a signal handler that never returns, then sleeps: only heartbeats can
//                     tell that the worker stopped listening
//   invalid_utf8      tokens carry bytes that are not UTF-8; infer writes such bytes to stderr,
//                     then dereferences a null pointer (its crash report holds them)
//   underreport_usage generate_text streams every token but reports 1 completion token
//   invalid_utf8_hello its plugin name (so its Hello) ends in bytes that are not UTF-8
//   invalid_utf8_error generate_text fails with an error message that is not UTF-8
//   fd_flood          infer sends packets full of descriptors and never the lane markers for them

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/message_lane.h"
#include "pio/ipc/tensor_view.h"
#include "pio/plugin.hpp"

namespace {

using pio::Result;
using pio::Status;
using pio::sdk::Json;

constexpr std::string_view kMode = HOSTILE_MODE;
constexpr int kControlFd = 3;  // pio/sandbox/worker_side.h

// What the static constructor saw (static_escape).
int g_inet_socket_errno = -1;
int g_unix_socket_errno = -1;
int g_fork_result = -2;  // 0: fork succeeded (the child exited at once); else errno

__attribute__((constructor)) void escape_at_load() {
  if (kMode != "static_escape") return;
  const int inet = ::socket(AF_INET, SOCK_STREAM, 0);
  g_inet_socket_errno = inet < 0 ? errno : 0;
  if (inet >= 0) ::close(inet);
  const int unix_socket = ::socket(AF_UNIX, SOCK_STREAM, 0);
  g_unix_socket_errno = unix_socket < 0 ? errno : 0;
  if (unix_socket >= 0) ::close(unix_socket);
  const pid_t child = ::fork();
  if (child == 0) _exit(0);
  g_fork_result = child < 0 ? errno : 0;
  if (child > 0) ::waitpid(child, nullptr, 0);
}

void crash() {
  volatile int* null = nullptr;
  *null = 1;
}

// The worker->host ring of the arena, found from an input tensor: in a fresh worker the first
// input lies at the very start of the host->worker ring, and the host's arena layout is the
// default one with 4 MiB rings (the tests' host config). A compromised worker knows as much.
struct ArenaView {
  std::byte* base = nullptr;
  pio::ipc::ArenaLayout layout;
};

std::optional<ArenaView> arena_from(std::span<const pio::sdk::TensorView> inputs) {
  if (inputs.empty()) return std::nullopt;
  pio::ipc::ArenaConfig config;
  config.host_to_worker_ring_bytes = 4u << 20;
  config.worker_to_host_ring_bytes = 4u << 20;
  auto layout = pio::ipc::ArenaLayout::compute(config);
  if (!layout.ok()) return std::nullopt;
  auto* input = const_cast<std::byte*>(inputs[0].bytes().data());
  return ArenaView{input - layout->ring_host_to_worker().offset, *layout};
}

// Writes envelopes straight into the worker->host lane of the arena, as a compromised worker could.
void forge_results(const ArenaView& arena) {
  std::byte* lane = arena.base + arena.layout.lane_worker_to_host().offset;
  const uint32_t slots = arena.layout.config().lane_slots;
  const uint32_t slot_bytes = arena.layout.config().lane_slot_bytes;
  auto sequence_of = [&](uint64_t index) {
    std::byte* slot = lane + pio::ipc::MessageLane::kSlotsOffset + index * slot_bytes;
    return reinterpret_cast<std::atomic<uint64_t>*>(slot + 8);
  };
  // The worker's own writer keeps its head privately; the messages published so far are the
  // highest sequence number any slot holds.
  uint64_t published = 0;
  for (uint32_t i = 0; i < slots; ++i) {
    published = std::max(published, sequence_of(i)->load(std::memory_order_acquire));
  }
  for (uint64_t id = 1; id <= 16; ++id) {
    flatbuffers::FlatBufferBuilder fbb;
    const int64_t shape[] = {4096};
    const pio::ipc::RingSlot outside{arena.layout.total_size() + (1u << 20), 4096};
    auto desc = pio::ipc::build_tensor_desc(fbb, "y", pio::wire::DType::U8, shape,
                                            pio::wire::Ring::WorkerToHost, outside);
    if (!desc.ok()) return;
    std::vector<flatbuffers::Offset<pio::wire::TensorDesc>> outputs = {*desc};
    pio::ipc::finish_envelope(fbb, id, pio::wire::Message::Result,
                              pio::wire::CreateResultDirect(fbb, &outputs).Union());
    const uint64_t index = published % slots;
    std::byte* slot = lane + pio::ipc::MessageLane::kSlotsOffset + index * slot_bytes;
    const uint32_t length = fbb.GetSize();
    const uint32_t kind = static_cast<uint32_t>(pio::ipc::LaneSlotKind::kInline);
    if (length + pio::ipc::MessageLane::kSlotHeaderBytes > slot_bytes) return;
    std::memcpy(slot, &length, 4);
    std::memcpy(slot + 4, &kind, 4);
    std::memcpy(slot + pio::ipc::MessageLane::kSlotHeaderBytes, fbb.GetBufferPointer(), length);
    sequence_of(index)->store(++published, std::memory_order_seq_cst);
    const uint8_t wake = 0x57;
    ::send(kControlFd, &wake, 1, MSG_DONTWAIT);
  }
}

void scribble_arena(ArenaView arena, std::chrono::milliseconds how_long) {
  std::mt19937_64 random(42);
  const auto end = std::chrono::steady_clock::now() + how_long;
  auto* words = reinterpret_cast<uint64_t*>(arena.base);
  const size_t n = arena.layout.total_size() / 8;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 4096; ++i) words[random() % n] = random();
  }
}

void park_forever(int) {
  for (;;) ::pause();
}

// Signals every other thread of this process into park_forever. The worker is PID 1 of its own
// PID namespace, so its threads have small ids.
void stall_other_threads() {
  struct sigaction action {};
  action.sa_handler = park_forever;
  ::sigaction(SIGUSR1, &action, nullptr);
  const pid_t self = ::gettid();
  for (pid_t tid = 1; tid < 256; ++tid) {
    if (tid != self) ::syscall(SYS_tgkill, ::getpid(), tid, SIGUSR1);
  }
}

// invalid_utf8: bytes >= 0x80 that are no UTF-8 (a lone continuation byte, a cut sequence, 0xff).
constexpr std::string_view kNotUtf8 = "\xff\xfe bad \xc3\x28 cut \xe2\x82 lone \x80";

void write_invalid_utf8_then_crash() {
  const std::string line = "hostile stderr: " + std::string(kNotUtf8) + "\n";
  for (int i = 0; i < 3; ++i) ::write(STDERR_FILENO, line.data(), line.size());
  crash();
}

// fd_flood: as many packets as the host's lane has slots, each with the most descriptors a packet
// may carry (its own stderr, 8 times), none announced in the lane.
void flood_descriptors() {
  const char bytes[] = "descriptors without a marker";
  int fds[8];
  std::fill(std::begin(fds), std::end(fds), STDERR_FILENO);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))];
  for (int i = 0; i < 64; ++i) {
    iovec iov{const_cast<char*>(bytes), sizeof(bytes)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    std::memcpy(CMSG_DATA(c), fds, sizeof(fds));
    if (::sendmsg(kControlFd, &msg, MSG_DONTWAIT) < 0) break;
  }
}

// memory_bomb: allocates and touches 8 MiB blocks until the memory limit stops the worker.
[[noreturn]] void touch_memory_until_stopped() {
  std::vector<char*> blocks;
  for (;;) {
    char* block = static_cast<char*>(malloc(8u << 20));
    if (block == nullptr) abort();
    std::memset(block, 0x5a, 8u << 20);
    blocks.push_back(block);
  }
}

class HostilePlugin final : public pio::sdk::TextModelPlugin {
 public:
  static constexpr const char* kPluginName =
      kMode == "invalid_utf8_hello" ? HOSTILE_NAME "\xff\xfe" : HOSTILE_NAME;
  static constexpr const char* kPluginVersion = "0.1.0";
  static constexpr bool kResumesGenerations = kMode == "resume_crash";

  Status load_model(const pio::sdk::ModelSource&, const Json&) override {
    if (kMode == "abort_load") abort();
    return pio::ok_status();
  }

  Status infer(std::span<const pio::sdk::TensorView> inputs, pio::sdk::CallContext& call) override {
    if (kMode == "segv_infer") crash();
    if (kMode == "invalid_utf8") write_invalid_utf8_then_crash();
    if (kMode == "exit_in_request") exit(0);
    if (kMode == "spin_infer") {
      static std::atomic<uint64_t> spins{0};
      for (;;) spins.fetch_add(1, std::memory_order_relaxed);
    }
    if (kMode == "memory_bomb") touch_memory_until_stopped();
    if (kMode == "fork_bomb") {
      for (;;) {
        const pid_t child = ::fork();
        if (child < 0) abort();
        if (child == 0) {
          for (;;) ::pause();
        }
      }
    }
    if (kMode == "garbage_packets") {
      std::vector<uint8_t> big(3u << 20, 0xab);
      ::send(kControlFd, big.data(), big.size(), MSG_DONTWAIT);
      const char garbage[] = "this is not a flatbuffer";
      for (int i = 0; i < 256; ++i) ::send(kControlFd, garbage, sizeof(garbage), MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::seconds(30));
    }
    if (kMode == "fd_flood") {
      flood_descriptors();
      std::this_thread::sleep_for(std::chrono::seconds(30));
    }
    if (kMode == "stall_reader") {
      stall_other_threads();
      std::this_thread::sleep_for(std::chrono::seconds(60));
    }
    if (kMode == "bad_descriptor") {
      if (auto arena = arena_from(inputs)) forge_results(*arena);
      std::this_thread::sleep_for(std::chrono::seconds(30));
    }
    if (kMode == "huge_output") {
      const int64_t shape[] = {int64_t{10} << 30};
      PIO_ASSIGN_OR_RETURN(auto out, call.allocate_output("huge", pio::sdk::DType::kU8, shape));
      std::memset(out.data(), 1, out.size());
      return pio::ok_status();
    }
    std::thread scribbler;
    if (kMode == "scribble") {
      if (auto arena = arena_from(inputs)) {
        scribbler =
            std::thread([a = *arena] { scribble_arena(a, std::chrono::milliseconds(300)); });
      }
    }
    for (const auto& input : inputs) {
      PIO_ASSIGN_OR_RETURN(auto out,
                           call.allocate_output(input.name(), input.dtype(), input.shape()));
      if (!out.empty()) std::memcpy(out.data(), input.bytes().data(), out.size());
    }
    if (scribbler.joinable()) scribbler.join();
    return pio::ok_status();
  }

  Result<Json> get_model_info() override {
    return Json{{"name", kPluginName},
                {"mode", std::string(kMode)},
                {"inet_socket_errno", g_inet_socket_errno},
                {"unix_socket_errno", g_unix_socket_errno},
                {"fork_result", g_fork_result}};
  }

  Result<std::vector<int32_t>> tokenize(std::string_view text) override {
    return std::vector<int32_t>(text.begin(), text.end());
  }
  Result<std::string> detokenize(std::span<const int32_t> ids) override {
    return std::string(ids.begin(), ids.end());
  }

  Result<pio::sdk::GenerateResult> generate_text(const pio::sdk::GenerateRequest& request,
                                                 pio::sdk::TokenStream& out) override {
    uint32_t emitted = 0;
    if (kMode == "invalid_utf8_error") {
      return pio::invalid_argument_error("hostile error: " + std::string(kNotUtf8));
    }
    if (kMode == "invalid_utf8") {
      const int32_t id = 0xff;
      if (!out.emit({&id, 1}, kNotUtf8)) {
        return pio::sdk::GenerateResult{pio::sdk::FinishReason::kCancelled, 0, 0};
      }
      return pio::sdk::GenerateResult{pio::sdk::FinishReason::kStop, 0, 1};
    }
    if (kMode == "memory_bomb") touch_memory_until_stopped();
    const auto resumed = request.resume_token_ids.value_or(std::span<const int32_t>());
    if (kMode == "resume_crash") {
      std::fprintf(stderr, "prompt: %.*s\n", static_cast<int>(request.prompt.size()),
                   request.prompt.data());
      emitted = static_cast<uint32_t>(std::min(resumed.size(), request.prompt.size()));
    }
    for (char c : request.prompt.substr(emitted)) {
      if ((kMode == "crash_mid_stream" || kMode == "resume_crash") && emitted == 3) crash();
      if (kMode == "slow_drip") std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const int32_t id = static_cast<unsigned char>(c);
      if (!out.emit({&id, 1}, std::string_view(&c, 1))) {
        return pio::sdk::GenerateResult{pio::sdk::FinishReason::kCancelled, 0, emitted};
      }
      ++emitted;
    }
    // 1, not 0: the worker runtime replaces a count of 0 with its own.
    if (kMode == "underreport_usage")
      return pio::sdk::GenerateResult{pio::sdk::FinishReason::kStop, 0, 1};
    return pio::sdk::GenerateResult{pio::sdk::FinishReason::kStop, 0, emitted};
  }

  Result<pio::sdk::GenerateResult> chat_completion(const pio::sdk::GenerateRequest& request,
                                                   pio::sdk::TokenStream& out) override {
    return generate_text(request, out);
  }
};

}  // namespace

PIO_PLUGIN(HostilePlugin)
