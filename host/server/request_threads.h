#pragma once
// RequestThreads: the pool that runs the server's blocking Host calls, off the network thread.
// Work waits in one queue per tenant (-1: no tenant, -2: the admin API) and threads take from the
// queues in turn, so a tenant that floods the server only lengthens its own queue.
//
// A work item that throws does not end its thread: the exception is logged (escaped_exception)
// and the thread takes the next item. Work items still answer their own clients, so each catches
// what it can answer first; this is the last edge.
//
// The one thing a caller gets wrong: stop() (and the destructor) waits for the items running, and
// items submitted after stop() are dropped without running.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace pio::server {

class RequestThreads {
 public:
  explicit RequestThreads(uint32_t n);
  ~RequestThreads();
  RequestThreads(const RequestThreads&) = delete;
  RequestThreads& operator=(const RequestThreads&) = delete;

  void submit(int tenant, std::function<void()> work);
  // Runs what was queued, then joins the threads. Idempotent.
  void stop();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::deque<std::function<void()>>> queues_;
  std::deque<int> turns_;  // tenants with work waiting, in the order they are served
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace pio::server
