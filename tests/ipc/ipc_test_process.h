#pragma once
// Test support: a host-side arena + channel connected to an ipc_test_peer process.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/shm_arena.h"

namespace pio::ipc::testing {

// A running ipc_test_peer in `mode` with its own arena; killed and reaped on destruction.
class PeerProcess {
 public:
  static PeerProcess start(const std::string& mode, ArenaConfig config = small_config());
  static ArenaConfig small_config();
  PeerProcess(PeerProcess&& other) noexcept
      : arena_(std::move(other.arena_)),
        layout_(std::move(other.layout_)),
        channel_(std::move(other.channel_)),
        pid_(std::exchange(other.pid_, -1)) {}
  ~PeerProcess();

  Channel& channel() { return *channel_; }
  ShmArena& arena() { return *arena_; }
  const ArenaLayout& layout() const { return *layout_; }
  pid_t pid() const { return pid_; }
  // Waits for the peer to exit; returns its wait status.
  int wait();
  void kill_now();

 private:
  PeerProcess() = default;
  std::unique_ptr<ShmArena> arena_;
  std::optional<ArenaLayout> layout_;
  std::unique_ptr<Channel> channel_;
  pid_t pid_ = -1;
};

// Directory of the running test binary (the peer is built beside it).
std::string binary_dir();

}  // namespace pio::ipc::testing
