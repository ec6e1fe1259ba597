#pragma once
// ThreadPool: a few persistent threads that split one range of work with the calling thread, for
// kernels called hundreds of times per decoded token (one GEMV takes 10-300 us).
//
// Why not OpenMP: libtorch's OpenMP threads and a second OpenMP team fight over the two cores of
// the machines we run on (a GEMV drops under 2 GB/s), and a sleeping worker costs 10-30 us to wake
// in these VMs. So the workers spin for a bounded time (kSpinBudget) after each job, which keeps
// back-to-back calls cheap, then sleep on a futex so an idle pool costs nothing.
//
// What a caller gets wrong: parallel_for blocks until every part is done and runs part 0 on the
// calling thread; callers from several threads are serialised (one job at a time), and calling
// parallel_for from inside a job deadlocks.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace pio::kernels {

class ThreadPool {
 public:
  // How long an idle worker (or the waiting caller) spins before it sleeps.
  static constexpr std::chrono::microseconds kSpinBudget{200};

  // `threads` counts the caller: ThreadPool(2) starts one worker thread. Clamped to >= 1.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on threads() contiguous parts of [0, n) (some may be empty) and returns
  // when all are done.
  template <typename Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    auto call = [](void* context, int64_t begin, int64_t end) {
      (*static_cast<std::remove_reference_t<Fn>*>(context))(begin, end);
    };
    run(n, call, &fn);
  }

 private:
  using Call = void (*)(void* context, int64_t begin, int64_t end);

  void run(int64_t n, Call call, void* context);
  void worker_main(int part);
  std::pair<int64_t, int64_t> part_range(int part) const;

  std::mutex run_mutex_;  // one job at a time
  std::vector<std::thread> workers_;
  // Job description, published by the release increment of generation_.
  Call call_ = nullptr;
  void* context_ = nullptr;
  int64_t n_ = 0;
  bool stop_ = false;
  // Futex words (32 bits, as the syscall needs).
  std::atomic<uint32_t> generation_{0};  // bumped once per job
  std::atomic<uint32_t> pending_{0};     // workers still running the current job
  std::atomic<uint32_t> workers_sleeping_{0};
  std::atomic<uint32_t> caller_sleeping_{0};
};

}  // namespace pio::kernels
