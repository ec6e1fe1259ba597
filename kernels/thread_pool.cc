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

constexpr uint64_t kFieldMask = (uint64_t{1} << 20) - 1;
uint64_t job_of(uint64_t claim) { return claim >> 40; }
uint64_t chunks_of(uint64_t claim) { return (claim >> 20) & kFieldMask; }
uint64_t next_of(uint64_t claim) { return claim & kFieldMask; }

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(threads, 1) - 1;
  workers_.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(run_mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&generation_);
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::run(int64_t n, int64_t grain, Call call, void* context) {
  std::lock_guard lock(run_mutex_);
  if (n <= 0) return;
  grain = std::max({grain, int64_t{1}, (n + kMaxChunks - 1) / kMaxChunks});
  const int64_t chunks = (n + grain - 1) / grain;
  if (workers_.empty() || chunks == 1) {
    call(context, 0, n);
    return;
  }
  call_ = call;
  context_ = context;
  n_ = n;
  grain_ = grain;
  done_.store(0, std::memory_order_relaxed);
  job_ = (job_ + 1) & 0xFFFFFF;
  claim_.store((job_ << 40) | (static_cast<uint64_t>(chunks) << 20), std::memory_order_release);
  // seq_cst on both sides of the sleeping flags: the poster's increment and the sleeper's flag
  // cannot both miss each other.
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (workers_sleeping_.load(std::memory_order_seq_cst) != 0) futex_wake_all(&generation_);

  work_on(job_);

  const auto all = static_cast<uint32_t>(chunks);
  auto finished = [&] { return done_.load(std::memory_order_acquire) == all; };
  if (spin_until(finished)) return;
  for (;;) {
    caller_sleeping_.store(1, std::memory_order_seq_cst);
    const uint32_t now = done_.load(std::memory_order_seq_cst);
    if (now == all) break;
    futex_wait(&done_, now);
  }
  caller_sleeping_.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);  // pairs with the chunks' done_ increments
}

void ThreadPool::work_on(uint64_t job) {
  for (;;) {
    uint64_t claim = claim_.load(std::memory_order_acquire);
    do {
      if (job_of(claim) != job || next_of(claim) >= chunks_of(claim)) return;
    } while (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
    // The job cannot end while one of its chunks is claimed and not done, so its fields hold.
    const auto begin = static_cast<int64_t>(next_of(claim)) * grain_;
    call_(context_, begin, std::min(n_, begin + grain_));
    const uint32_t done = done_.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (done == chunks_of(claim) && caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
      futex_wake_all(&done_);
    }
  }
}

void ThreadPool::worker_main() {
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
    work_on(job_of(claim_.load(std::memory_order_acquire)));
  }
}

}  // namespace pio::kernels
