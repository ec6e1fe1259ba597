#pragma once
// ShmArena: the shared memory between the host and one worker: one memfd, sealed against
// shrinking and growing, mapped shared on both sides and pre-faulted.
//
// The host creates it (create) before spawning the worker and passes the fd; the worker maps it
// (map_existing), which checks the seals so that the host can never be made to touch a page past
// the end of the file (a shrink would turn the host's reads into SIGBUS).
// What lies inside the mapping is hostile to the host: see ArenaLayout and the readers of each
// region. The mapping stays valid until the ShmArena is destroyed.

#include <cstddef>
#include <cstdint>
#include <string>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::ipc {

class ShmArena {
 public:
  // Host side: a new memfd of `size` bytes (rounded up to a page), sealed, mapped, pre-faulted.
  static Result<ShmArena> create(const std::string& name, size_t size);
  // Worker side: maps an arena the host created. Refuses an fd that is not a sealed memfd of at
  // least `min_size` bytes.
  static Result<ShmArena> map_existing(UniqueFd fd, size_t min_size);

  ShmArena(ShmArena&& other) noexcept;
  ShmArena& operator=(ShmArena&& other) noexcept;
  ShmArena(const ShmArena&) = delete;
  ShmArena& operator=(const ShmArena&) = delete;
  ~ShmArena();

  // Closes the memfd; the mapping stays valid. A worker does this before it runs plugin code,
  // so the plugin cannot map the arena again (for instance executable). fd() is -1 afterwards.
  void close_fd() { fd_.reset(); }

  std::byte* data() const { return base_; }
  size_t size() const { return size_; }
  int fd() const { return fd_.get(); }

 private:
  ShmArena(UniqueFd fd, std::byte* base, size_t size)
      : fd_(std::move(fd)), base_(base), size_(size) {}
  void unmap();

  UniqueFd fd_;
  std::byte* base_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pio::ipc
