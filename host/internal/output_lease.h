#pragma once
// OutputLease: the host's hold on output slots of one worker's worker->host ring. It keeps the
// arena mapped (so the caller's views stay valid even after the worker died) and, when dropped,
// asks the loop to send the worker a Release for its slots, if that same worker still lives.
//
// The one thing a caller gets wrong: the destructor may run on any thread; it only posts.

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "pio/ipc/shm_arena.h"
#include "pio/ipc/tensor_view.h"

namespace pio::host::internal {

// Posts work to the Host's loop while the Host exists; a no-op after it is gone.
class LoopPoster {
 public:
  explicit LoopPoster(std::function<void(std::function<void()>)> post) : post_(std::move(post)) {}
  void post(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    if (post_) post_(std::move(fn));
  }
  void close() {
    std::lock_guard lock(mu_);
    post_ = nullptr;
  }

 private:
  std::mutex mu_;
  std::function<void(std::function<void()>)> post_;
};

class OutputLease {
 public:
  // `release` runs on the loop with the released views.
  OutputLease(std::shared_ptr<const ipc::ShmArena> arena, std::vector<ipc::TensorView> views,
              std::shared_ptr<LoopPoster> poster,
              std::function<void(const std::vector<ipc::TensorView>&)> release)
      : arena_(std::move(arena)),
        views_(std::move(views)),
        poster_(std::move(poster)),
        release_(std::move(release)) {}
  ~OutputLease() {
    if (poster_ && release_ && !views_.empty()) {
      poster_->post([views = std::move(views_), release = std::move(release_),
                     arena = std::move(arena_)] { release(views); });
    }
  }
  OutputLease(const OutputLease&) = delete;
  OutputLease& operator=(const OutputLease&) = delete;

 private:
  std::shared_ptr<const ipc::ShmArena> arena_;
  std::vector<ipc::TensorView> views_;
  std::shared_ptr<LoopPoster> poster_;
  std::function<void(const std::vector<ipc::TensorView>&)> release_;
};

}  // namespace pio::host::internal
