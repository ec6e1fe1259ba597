#include "pio/kernels/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace pio::kernels {
namespace {

void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

// Spins until done() or the budget runs out; true when done() became true.
template <typename Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + ThreadPool::kSpinBudget;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(threads, 1) - 1;
  workers_.reserve(static_cast<size_t>(workers));
  for (int part = 1; part <= workers; ++part) {
    workers_.emplace_back([this, part] { worker_main(part); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(run_mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
    futex_wake_all(&generation_);
  }
  for (std::thread& worker : workers_) worker.join();
}

std::pair<int64_t, int64_t> ThreadPool::part_range(int part) const {
  const int64_t parts = threads();
  return {n_ * part / parts, n_ * (part + 1) / parts};
}

void ThreadPool::run(int64_t n, Call call, void* context) {
  std::lock_guard lock(run_mutex_);
  if (workers_.empty() || n <= 1) {
    call(context, 0, n);
    return;
  }
  call_ = call;
  context_ = context;
  n_ = n;
  pending_.store(static_cast<uint32_t>(workers_.size()), std::memory_order_relaxed);
  // seq_cst on both sides of the sleeping flags: the poster's increment and the sleeper's flag
  // cannot both miss each other.
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (workers_sleeping_.load(std::memory_order_seq_cst) != 0) futex_wake_all(&generation_);

  const auto [begin, end] = part_range(0);
  call(context, begin, end);

  auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (spin_until(done)) return;
  for (;;) {
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    const uint32_t left = pending_.load(std::memory_order_seq_cst);
    if (left == 0) break;
    futex_wait(&pending_, left);
  }
  caller_sleeping_.store(0, std::memory_order_relaxed);
  // Pairs with the workers' release decrement.
  std::atomic_thread_fence(std::memory_order_acquire);
}

void ThreadPool::worker_main(int part) {
  // Not a load: a job may be posted before this thread first runs, and it must not be missed.
  uint32_t seen = 0;
  for (;;) {
    auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(changed)) {
      for (;;) {
        workers_sleeping_.fetch_add(1, std::memory_order_seq_cst);
        const uint32_t now = generation_.load(std::memory_order_seq_cst);
        if (now != seen) {
          workers_sleeping_.fetch_sub(1, std::memory_order_relaxed);
          break;
        }
        futex_wait(&generation_, now);
        workers_sleeping_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    const auto [begin, end] = part_range(part);
    call_(context_, begin, end);
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
      futex_wake_all(&pending_);
    }
  }
}

}  // namespace pio::kernels
