#pragma once
// Channel: one end of the control channel between the host and a worker.
//
// Every message is an Envelope. Small ones travel through the MessageLane of their direction in
// the shared arena; large ones, and any with descriptors, travel as a packet on the SEQPACKET
// socket and a marker in the lane keeps them in order. A receiver spins on its lane for a short
// while (ChannelOptions::spin), then announces that it sleeps and blocks on the socket; the sender
// then sends a 1-byte wake packet. So a busy exchange costs a shared-memory round trip (~2 us) and
// an idle one a socket wake-up (~25 us), and the socket always tells of the peer's death.
//
// Both sides use this class; the host's side is what matters for safety: everything read from
// the lane or the socket is copied into private memory and verified (verify_envelope) before the
// caller sees it. After a protocol violation the channel is broken and every call fails; the
// owner should kill the worker.
//
// Thread-safety: send() and receive() may run on two different threads at once (one each); two
// concurrent senders or two concurrent receivers must be serialised by the caller.
// The arena must outlive the channel.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/message_lane.h"
#include "pio/ipc/shm_arena.h"
#include "pio/ipc/socket_packet.h"
#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::ipc {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline Deadline deadline_after(std::chrono::nanoseconds d) { return Clock::now() + d; }

enum class ChannelSide { kHost, kWorker };

struct ChannelOptions {
  EnvelopeLimits limits;
  // How long a receiver polls its lane before it sleeps on the socket. Bounded: on 2 CPUs a long
  // spin starves the peer when both land on one CPU (limits.md section 2); the polls yield the
  // CPU (spin_until), so a peer woken onto this CPU runs at once.
  std::chrono::nanoseconds spin{20'000};
  // Most descriptors this side holds for packets read from the socket whose lane markers have
  // not come yet; a peer that sends more breaks the channel (protocol violation) and what was
  // held is closed. Without it a worker could pin (lane_slots + 1) * kMaxFdsPerPacket host
  // descriptors by never publishing markers. Two packets' worth, because what legitimately
  // travels with descriptors is little: no message from a worker carries any (GPU tensors cross
  // as CUDA IPC handles, which are bytes), and a message that does carries at most one packet's
  // worth; the second lets a peer send the next one before this side has taken the first.
  size_t max_held_fds = 2 * kMaxFdsPerPacket;
};

// A received, verified message. Reused across receives to keep its buffer.
class InboundMessage {
 public:
  const wire::Envelope& envelope() const {
    PIO_CHECK(envelope_ != nullptr);
    return *envelope_;
  }
  uint64_t request_id() const { return envelope().request_id(); }
  wire::Message type() const { return envelope().message_type(); }
  std::vector<UniqueFd>& fds() { return fds_; }
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  friend class Channel;
  std::vector<uint8_t> bytes_;
  std::vector<UniqueFd> fds_;
  const wire::Envelope* envelope_ = nullptr;
};

class Channel {
 public:
  // `socket` is this side's end of the SEQPACKET socketpair; `arena`/`layout` the shared arena.
  // The host must have called prepare_arena() before the worker maps it.
  static Result<Channel> create(UniqueFd socket, const ShmArena& arena, const ArenaLayout& layout,
                                ChannelSide side, ChannelOptions options = {});
  // Host side, once, before the worker starts: lays out the header and zeroes both lanes.
  static void prepare_arena(ShmArena& arena, const ArenaLayout& layout);

  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&&) = delete;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Sends one finished envelope (see finish_envelope), with optional descriptors. Blocks while
  // the lane is full (backpressure) until `deadline`; deadline_exceeded, with nothing sent, when
  // it stayed full. A deadline already passed never blocks: the message goes if there is room.
  Status send(std::span<const uint8_t> envelope, std::span<const int> fds = {},
              Deadline deadline = Deadline::max());

  // Receives the next message into *out. deadline_exceeded when none came in time; unavailable
  // when the peer closed its end; invalid_argument ("protocol violation: ...") on bytes that do
  // not verify (the channel is then broken).
  Status receive(InboundMessage* out, Deadline deadline);

  // Non-blocking receive: false when nothing is waiting, unavailable once the peer has closed and
  // everything it sent was read. For event loops: after it returns false,
  // call arm_wakeup(), and if that returns false wait for the socket to be readable, then call
  // drain_socket() and try again.
  Result<bool> try_receive(InboundMessage* out);
  // Announces that this side is about to wait on the socket. Returns true if a message arrived in
  // the meantime or the peer closed (do not wait then: call try_receive again).
  Result<bool> arm_wakeup();
  // Reads what the socket holds (wake packets, large messages) without blocking.
  Status drain_socket();

  int socket_fd() const { return socket_.get(); }
  bool broken() const { return broken_.load(std::memory_order_relaxed); }

 private:
  Channel(UniqueFd socket, LaneWriter writer, LaneReader reader, ChannelOptions options);
  Status fail(Status status);
  Result<bool> try_receive_locked(InboundMessage* out);
  Status drain_socket_locked();
  void drop_inbox_locked();
  Status wait_for_lane_space(Deadline deadline);

  UniqueFd socket_;
  ChannelOptions options_;
  std::atomic<bool> broken_{false};

  std::mutex send_mu_;
  LaneWriter writer_;

  std::mutex receive_mu_;
  LaneReader reader_;
  // Data packets read from the socket before their lane marker was seen, in arrival order.
  struct SocketPacket {
    std::vector<uint8_t> bytes;
    std::vector<UniqueFd> fds;
  };
  std::deque<SocketPacket> socket_inbox_;
  size_t held_fds_ = 0;  // descriptors in socket_inbox_ (bounded by options_.max_held_fds)
  size_t max_inbox_;
  bool peer_closed_ = false;
  std::vector<uint8_t> scratch_;
};

}  // namespace pio::ipc
