#pragma once
// OutputRing: the worker's allocator of output tensors in the worker->host ring, shared by the
// thread that runs the plugin (allocate) and the thread that reads the channel (release).
//
// The one thing a caller gets wrong: allocate() blocks while the ring is full, waiting for the
// host's Releases, which only the channel thread can deliver; calling it on the channel thread
// would wait for itself until the deadline.

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "pio/ipc/channel.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/status.h"

namespace pio::sdk::worker {

class OutputRing {
 public:
  explicit OutputRing(ipc::ShmRing ring) : ring_(std::move(ring)) {}

  // A slot of `length` bytes. Waits for space until `deadline`, or until *cancelled turns true.
  // invalid_argument when it could never fit; resource_exhausted naming the ring's size when the
  // deadline passed; cancelled when the request was cancelled meanwhile.
  Result<ipc::RingSlot> allocate(uint64_t length, ipc::Deadline deadline,
                                 const std::atomic<bool>& cancelled);
  // Hands a slot back (the host's Release, or the worker dropping the outputs of a failed
  // request) and wakes a waiting allocate().
  Status release(const ipc::RingSlot& slot);

  uint64_t live_count() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable space_;
  ipc::ShmRing ring_;
};

}  // namespace pio::sdk::worker
