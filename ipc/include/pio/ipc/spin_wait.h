#pragma once
// spin_until: the bounded, yielding poll that a wait on the request path makes before it sleeps.
//
// Why spin: in a VM, waking a thread whose vCPU went idle costs tens of microseconds, and one
// request through the Host crosses up to five handoffs (caller -> loop -> worker channel thread
// -> executor -> loop -> caller): ~100 us asleep against a few microseconds of work (bench_host).
// A waiter still polling when its event comes sees it at once, and a polling thread keeps its
// vCPU from halting, so a thread woken onto it starts in a few microseconds instead.
//
// Why yield: on two CPUs the host's caller and loop and the worker's two threads can all be
// waiting while one of them works. A pause loop keeps its CPU until the tick, so a woken thread
// queued behind it waits that long (bench_worker, pause-only receive: 64-byte infer 15-18 us;
// yielding: 6 us). After a few pauses (an answer already under way lands within ~1 us, sooner
// than a yield returns) each poll calls sched_yield (~0.4 us here), which hands the CPU to a
// runnable thread of this CPU and returns at once when there is none. More spinners do not
// help: an executor that also spun on its queue made that infer 57 us, each yield a context
// switch between two pollers while the one with work waited.
//
// Why bounded: nothing burns a CPU while idle. A caller spins only for `window` after its own
// activity, then sleeps as before; the window is a latency-for-CPU trade each caller states.

#include <sched.h>

#include <chrono>

namespace pio::ipc {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` until it returns true (then true) or `window` has passed (then false).
template <typename Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds window) {
  // ~30 ns each: 32 of them cover a peer that is about to publish.
  constexpr int kPausePolls = 32;
  if (ready()) return true;
  const auto until = std::chrono::steady_clock::now() + window;
  for (int i = 0;; ++i) {
    if (i < kPausePolls) {
      cpu_relax();
    } else {
      sched_yield();
    }
    if (ready()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
  }
}

}  // namespace pio::ipc
