#pragma once
// What bench_ipc and bench_ipc_peer agree on. fd 3: control socket, fd 4: arena,
// fd 5: a raw socket for the socket ping-pong, fd 6: one memfd page for the futex ping-pong.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pio::bench {

inline constexpr uint64_t kArenaRingBytes = 80ull << 20;  // room for a 64 MiB tensor each way
inline constexpr int kSpinPauses = 1000;                  // ~19 us, as the channel spins

// Commands, carried in Infer.command.
inline constexpr const char* kConsume = "consume";                 // validate the input tensor, ack
inline constexpr const char* kProduce = "produce";                 // params_json = byte count
inline constexpr const char* kSocketPingPong = "socket-pingpong";  // params_json = rounds
inline constexpr const char* kFutexPingPong = "futex-pingpong";    // params_json = rounds
// The same with FUTEX_WAKE on every post, as limits.md's "futexspin (always wakes)": the ~2 us
// futex round trip the ipc targets are stated against.
inline constexpr const char* kFutexAlwaysWakePingPong = "futex-always-wake-pingpong";

// The futex page: the host posts `ping`, the peer answers in `pong`; each side announces that
// it sleeps, and the poster wakes only an announced sleeper.
struct FutexPage {
  alignas(64) uint32_t ping;
  alignas(64) uint32_t ping_sleeping;
  alignas(64) uint32_t pong;
  alignas(64) uint32_t pong_sleeping;
};

inline void futex_post(uint32_t* word, uint32_t* sleeping, uint32_t value) {
  std::atomic_ref<uint32_t>(*word).store(value, std::memory_order_seq_cst);
  if (std::atomic_ref<uint32_t>(*sleeping).exchange(0, std::memory_order_seq_cst) != 0) {
    syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }
}

inline void futex_post_always_wake(uint32_t* word, uint32_t value) {
  std::atomic_ref<uint32_t>(*word).store(value, std::memory_order_seq_cst);
  syscall(SYS_futex, word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

inline void futex_await(uint32_t* word, uint32_t* sleeping, uint32_t value) {
  std::atomic_ref<uint32_t> w(*word);
  for (int i = 0; i < kSpinPauses; ++i) {
    if (w.load(std::memory_order_acquire) == value) return;
    __builtin_ia32_pause();
  }
  for (;;) {
    std::atomic_ref<uint32_t>(*sleeping).store(1, std::memory_order_seq_cst);
    const uint32_t seen = w.load(std::memory_order_seq_cst);
    if (seen == value) return;
    timespec timeout{1, 0};  // every wait has a deadline; the loop re-checks
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &timeout, nullptr, 0);
  }
}

inline int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace pio::bench
