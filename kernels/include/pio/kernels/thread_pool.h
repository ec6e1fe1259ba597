#pragma once
// ThreadPool: a few persistent threads that share one range of work with the calling thread, for
// kernels called hundreds of times per decoded token (one GEMV takes 10-300 us).
//
// Why not OpenMP: libtorch's OpenMP threads and a second OpenMP team fight over the two cores of
// the machines we run on (a GEMV drops under 2 GB/s), and a sleeping worker costs 10-30 us to wake
// in these VMs. So the workers spin for a bounded time (kSpinBudget) after each job, which keeps
// back-to-back calls cheap, then sleep on a futex so an idle pool costs nothing. The range is
// handed out in chunks that each thread claims as it goes (not split in fixed parts), so when the
// machine is busy and a worker is not scheduled in time, the caller does its share instead of
// waiting for it.
//
// What a caller gets wrong: parallel_for blocks until every chunk is done and runs chunks on the
// calling thread too; callers from several threads are serialised (one job at a time), and
// calling parallel_for from inside a job deadlocks.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
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

  // Calls fn(begin, end) for chunks [k * grain, min(n, (k + 1) * grain)) covering [0, n), on any
  // of the threads, and returns when all are done. `grain` may be raised so that there are at
  // most kMaxChunks chunks. With no worker threads, fn is called once for [0, n).
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    auto call = [](void* context, int64_t begin, int64_t end) {
      (*static_cast<std::remove_reference_t<Fn>*>(context))(begin, end);
    };
    run(n, grain, call, &fn);
  }

  static constexpr int64_t kMaxChunks = (int64_t{1} << 20) - 1;

 private:
  using Call = void (*)(void* context, int64_t begin, int64_t end);

  void run(int64_t n, int64_t grain, Call call, void* context);
  void worker_main();
  // Claims and runs chunks of job `job` until none is left.
  void work_on(uint64_t job);

  std::mutex run_mutex_;  // one job at a time
  std::vector<std::thread> workers_;
  // The job, written before claim_ publishes it and read only after claiming one of its chunks.
  Call call_ = nullptr;
  void* context_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  bool stop_ = false;
  // job number (24 bits) | chunk count (20 bits) | next unclaimed chunk (20 bits). A claim is a
  // compare-exchange on the whole word, so a thread can only claim chunks of the job it saw.
  std::atomic<uint64_t> claim_{0};
  uint64_t job_ = 0;
  // Futex words (32 bits, as the syscall needs).
  std::atomic<uint32_t> generation_{0};  // bumped once per job, wakes the workers
  std::atomic<uint32_t> done_{0};        // chunks of the current job finished
  std::atomic<uint32_t> workers_sleeping_{0};
  std::atomic<uint32_t> caller_sleeping_{0};
};

}  // namespace pio::kernels
