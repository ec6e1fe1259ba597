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
  const int64_t grain = 1 + n % 5;
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    ASSERT_LE(0, begin);
    ASSERT_LT(begin, end);
    ASSERT_LE(end, n);
    ASSERT_EQ(begin % grain, 0);
    ASSERT_TRUE(end - begin == grain || end == n);
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
  pool.parallel_for(10, 2, [&](int64_t begin, int64_t end) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 10);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, RaisesTheGrainToStayUnderTheChunkLimit) {
  ThreadPool pool(2);
  const int64_t n = ThreadPool::kMaxChunks * 3 + 7;
  std::atomic<int64_t> covered{0}, calls{0};
  pool.parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    covered.fetch_add(end - begin);
    calls.fetch_add(1);
  });
  EXPECT_EQ(covered.load(), n);
  EXPECT_LE(calls.load(), ThreadPool::kMaxChunks);
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
