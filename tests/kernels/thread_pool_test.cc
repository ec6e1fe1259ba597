#include "pio/kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace pio::kernels {
namespace {

// Runs parallel_for over n and checks each index was visited exactly once.
void expect_each_index_once(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  pool.parallel_for(n, [&](int64_t begin, int64_t end) {
    ASSERT_LE(0, begin);
    ASSERT_LE(begin, end);
    ASSERT_LE(end, n);
    for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n;
}

TEST(ThreadPool, VisitsEveryIndexOnceForManyBackToBackJobs) {
  ThreadPool pool(2);
  EXPECT_EQ(pool.threads(), 2);
  for (int64_t n = 0; n < 2000; ++n) expect_each_index_once(pool, n % 37);
}

TEST(ThreadPool, WakesWorkersThatFellAsleep) {
  ThreadPool pool(3);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(ThreadPool::kSpinBudget * 5);
    expect_each_index_once(pool, 1000);
  }
}

TEST(ThreadPool, RunsEverythingOnTheCallerWithOneThread) {
  ThreadPool pool(0);
  EXPECT_EQ(pool.threads(), 1);
  const std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  pool.parallel_for(10, [&](int64_t begin, int64_t end) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, UsesTheWorkerThreadsForLargeJobs) {
  ThreadPool pool(2);
  std::atomic<int> other_thread{0};
  const std::thread::id caller = std::this_thread::get_id();
  pool.parallel_for(100, [&](int64_t, int64_t) {
    if (std::this_thread::get_id() != caller) other_thread.fetch_add(1);
  });
  EXPECT_EQ(other_thread.load(), 1);
}

TEST(ThreadPool, SerialisesCallersFromSeveralThreads) {
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 300; ++i) expect_each_index_once(pool, 64);
    });
  }
  for (std::thread& caller : callers) caller.join();
}

}  // namespace
}  // namespace pio::kernels
