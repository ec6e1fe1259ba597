#include "ipc_test_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "pio/ipc/socket_packet.h"

namespace pio::ipc::testing {

std::string binary_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

ArenaConfig PeerProcess::small_config() {
  ArenaConfig config;
  config.lane_slots = 16;
  config.lane_slot_bytes = 1024;
  config.host_to_worker_ring_bytes = 1 << 20;
  config.worker_to_host_ring_bytes = 1 << 20;
  return config;
}

PeerProcess PeerProcess::start(const std::string& mode, ArenaConfig config) {
  PeerProcess p;
  auto layout = ArenaLayout::compute(config);
  PIO_CHECK(layout.ok());
  p.layout_ = *layout;
  auto arena = ShmArena::create("pio-test-arena", layout->total_size());
  PIO_CHECK(arena.ok());
  p.arena_ = std::make_unique<ShmArena>(std::move(*arena));
  Channel::prepare_arena(*p.arena_, *p.layout_);
  auto sockets = make_packet_socketpair();
  PIO_CHECK(sockets.ok());
  const std::string peer = binary_dir() + "/ipc_test_peer";
  const int child_socket = sockets->second.get();
  const int arena_fd = p.arena_->fd();
  p.pid_ = fork();
  PIO_CHECK(p.pid_ >= 0);
  if (p.pid_ == 0) {
    // Child: move the two descriptors to 3 and 4 (without close-on-exec) and exec the peer.
    const int s = fcntl(child_socket, F_DUPFD, 100);
    const int a = fcntl(arena_fd, F_DUPFD, 100);
    if (s < 0 || a < 0 || dup2(s, 3) < 0 || dup2(a, 4) < 0) _exit(126);
    execl(peer.c_str(), peer.c_str(), mode.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  sockets->second.reset();
  auto channel =
      Channel::create(std::move(sockets->first), *p.arena_, *p.layout_, ChannelSide::kHost);
  PIO_CHECK(channel.ok());
  p.channel_ = std::make_unique<Channel>(std::move(*channel));
  return p;
}

int PeerProcess::wait() {
  int status = 0;
  if (pid_ > 0) {
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

void PeerProcess::kill_now() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

PeerProcess::~PeerProcess() {
  kill_now();
  wait();
}

}  // namespace pio::ipc::testing
