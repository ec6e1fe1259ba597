#pragma once
// ArenaLayout: where each region of a worker's ShmArena lies.
//
//   [header page][lane host->worker][lane worker->host][ring host->worker][ring worker->host]
//
// The host computes the layout from an ArenaConfig and writes it into the header page before the
// worker starts; the worker reads it from there (it trusts the host). The host never reads the
// header back: it keeps its own copy, because the worker can rewrite the header at any time.

#include <cstdint>

#include "pio/ipc/shm_arena.h"
#include "pio/ipc/status.h"

namespace pio::ipc {

struct ArenaConfig {
  // Message lanes (small envelopes, see MessageLane): slots per direction and bytes per slot.
  uint32_t lane_slots = 64;
  uint32_t lane_slot_bytes = 4096;
  // Tensor rings (see ShmRing): bytes per direction.
  uint64_t host_to_worker_ring_bytes = 16u << 20;
  uint64_t worker_to_host_ring_bytes = 16u << 20;
};

struct ArenaRegion {
  uint64_t offset = 0;
  uint64_t size = 0;
};

class ArenaLayout {
 public:
  // Checks the config (slot count a power of two, slot size a multiple of 64, limits) and lays
  // the regions out page-aligned.
  static Result<ArenaLayout> compute(const ArenaConfig& config);
  // Worker side: reads the layout the host wrote and checks it fits `arena`.
  static Result<ArenaLayout> read_from(const ShmArena& arena);
  // Host side: writes the header the worker will read.
  void write_to(ShmArena& arena) const;

  const ArenaConfig& config() const { return config_; }
  uint64_t total_size() const { return total_size_; }
  ArenaRegion lane_host_to_worker() const { return lane_h2w_; }
  ArenaRegion lane_worker_to_host() const { return lane_w2h_; }
  ArenaRegion ring_host_to_worker() const { return ring_h2w_; }
  ArenaRegion ring_worker_to_host() const { return ring_w2h_; }

 private:
  ArenaConfig config_;
  uint64_t total_size_ = 0;
  ArenaRegion lane_h2w_, lane_w2h_, ring_h2w_, ring_w2h_;
};

}  // namespace pio::ipc
