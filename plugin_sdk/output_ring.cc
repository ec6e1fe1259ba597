#include "internal/output_ring.h"

#include <algorithm>
#include <chrono>

#include "fmt/format.h"

namespace pio::sdk::worker {

namespace {
// How often a waiting allocation looks at its request's cancel flag.
constexpr std::chrono::milliseconds kCancelPoll{10};
}  // namespace

Result<ipc::RingSlot> OutputRing::allocate(uint64_t length, ipc::Deadline deadline,
                                           const std::atomic<bool>& cancelled) {
  std::unique_lock lock(mu_);
  for (;;) {
    Result<ipc::RingSlot> slot = ring_.allocate(length);
    if (slot.ok() || slot.status().code() != ErrorCode::kResourceExhausted) return slot;
    if (cancelled.load(std::memory_order_relaxed)) {
      return cancelled_error(
          "output allocation: the request was cancelled while the ring was full");
    }
    const auto now = ipc::Clock::now();
    if (now >= deadline) {
      return resource_exhausted_error(fmt::format(
          "output of {} bytes: the worker->host ring ({} bytes, {} slots unreleased) stayed full "
          "until the deadline; the host must Release the outputs it has read",
          length, ring_.size(), ring_.live_count()));
    }
    space_.wait_until(lock, std::min(deadline, now + kCancelPoll));
  }
}

Status OutputRing::release(const ipc::RingSlot& slot) {
  Status status;
  {
    std::lock_guard lock(mu_);
    status = ring_.release(slot);
  }
  if (status.ok()) space_.notify_all();
  return status;
}

uint64_t OutputRing::live_count() const {
  std::lock_guard lock(mu_);
  return ring_.live_count();
}

}  // namespace pio::sdk::worker
