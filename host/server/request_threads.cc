#include "request_threads.h"

#include <algorithm>

#include "escaped_exception.h"

namespace pio::server {

RequestThreads::RequestThreads(uint32_t n) {
  for (uint32_t i = 0; i < std::max<uint32_t>(1, n); ++i) {
    threads_.emplace_back([this] { run(); });
  }
}

RequestThreads::~RequestThreads() { stop(); }

void RequestThreads::submit(int tenant, std::function<void()> work) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto& queue = queues_[tenant];
    if (queue.empty()) turns_.push_back(tenant);
    queue.push_back(std::move(work));
  }
  cv_.notify_one();
}

void RequestThreads::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void RequestThreads::run() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !turns_.empty(); });
      if (turns_.empty()) return;  // stopping, nothing left
      const int tenant = turns_.front();
      turns_.pop_front();
      auto& queue = queues_[tenant];
      work = std::move(queue.front());
      queue.pop_front();
      if (!queue.empty()) turns_.push_back(tenant);  // its next request waits for its turn
    }
    try {
      work();
    } catch (...) {
      static_cast<void>(escaped_exception("a request thread"));
    }
  }
}

}  // namespace pio::server
