#include "pio/ipc/channel.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <thread>

#include "pio/ipc/socket_packet.h"
#include "pio/ipc/spin_wait.h"

namespace pio::ipc {
namespace {

// The 1-byte packet that means "look at your lane". Envelopes are never this short.
constexpr uint8_t kWakeByte = 0x57;

Status violation(std::string_view what) {
  return invalid_argument_error(fmt::format("protocol violation: {}", what));
}

// Waits for `events` on `fd` until `deadline`. Returns the revents (0 on timeout).
Result<short> wait_for(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) return static_cast<short>(0);
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
    timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                static_cast<long>(left.count() % 1'000'000'000)};
    pollfd p{fd, events, 0};
    const int r = ppoll(&p, 1, deadline == Deadline::max() ? nullptr : &ts, nullptr);
    if (r > 0) return p.revents;
    if (r == 0) return static_cast<short>(0);
    if (errno != EINTR) return errno_status("ppoll on the control socket", errno);
  }
}

}  // namespace

void Channel::prepare_arena(ShmArena& arena, const ArenaLayout& layout) {
  layout.write_to(arena);
  const auto& cfg = layout.config();
  MessageLane::initialize(arena.data() + layout.lane_host_to_worker().offset, cfg.lane_slots,
                          cfg.lane_slot_bytes);
  MessageLane::initialize(arena.data() + layout.lane_worker_to_host().offset, cfg.lane_slots,
                          cfg.lane_slot_bytes);
}

Result<Channel> Channel::create(UniqueFd socket, const ShmArena& arena, const ArenaLayout& layout,
                                ChannelSide side, ChannelOptions options) {
  if (!socket) return invalid_argument_error("Channel::create: no socket");
  if (layout.total_size() > arena.size()) {
    return invalid_argument_error(fmt::format(
        "Channel::create: layout needs {} bytes, arena has {}", layout.total_size(), arena.size()));
  }
  // Room for the largest packet either way (the default buffer, ~208 KiB, caps a SEQPACKET
  // packet below the limit). Best effort: the kernel clamps to net.core.wmem_max/rmem_max.
  const int buffer =
      static_cast<int>(std::min<size_t>(options.limits.max_bytes * 2 + 65536, 1 << 30));
  (void)setsockopt(socket.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  (void)setsockopt(socket.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  const auto& cfg = layout.config();
  std::byte* h2w = arena.data() + layout.lane_host_to_worker().offset;
  std::byte* w2h = arena.data() + layout.lane_worker_to_host().offset;
  const bool host = side == ChannelSide::kHost;
  LaneWriter writer(host ? h2w : w2h, cfg.lane_slots, cfg.lane_slot_bytes);
  LaneReader reader(host ? w2h : h2w, cfg.lane_slots, cfg.lane_slot_bytes);
  Channel channel(std::move(socket), writer, reader, options);
  channel.max_inbox_ = cfg.lane_slots + 1;
  return channel;
}

Channel::Channel(UniqueFd socket, LaneWriter writer, LaneReader reader, ChannelOptions options)
    : socket_(std::move(socket)),
      options_(options),
      writer_(writer),
      reader_(reader),
      max_inbox_(0) {}

Channel::Channel(Channel&& other) noexcept
    : socket_(std::move(other.socket_)),
      options_(other.options_),
      broken_(other.broken_.load()),
      writer_(other.writer_),
      reader_(other.reader_),
      socket_inbox_(std::move(other.socket_inbox_)),
      held_fds_(other.held_fds_),
      max_inbox_(other.max_inbox_),
      peer_closed_(other.peer_closed_) {}

Status Channel::fail(Status status) {
  broken_.store(true, std::memory_order_relaxed);
  return status;
}

Status Channel::send(std::span<const uint8_t> envelope, std::span<const int> fds,
                     Deadline deadline) {
  std::lock_guard lock(send_mu_);
  if (broken()) return failed_precondition_error("channel is broken after a protocol violation");
  const bool via_socket = !fds.empty() || envelope.size() > writer_.max_payload();
  if (via_socket && envelope.size() > options_.limits.max_bytes) {
    return invalid_argument_error(fmt::format("message of {} bytes exceeds the {}-byte limit",
                                              envelope.size(), options_.limits.max_bytes));
  }
  // Wait for a free slot first: once the socket packet is out its marker must follow, or the
  // peer would pair the next marker with the wrong packet.
  PIO_RETURN_IF_ERROR(wait_for_lane_space(deadline));
  if (via_socket) {
    for (;;) {
      Status s = send_packet(socket_.get(), envelope, fds, MSG_DONTWAIT);
      if (s.ok()) break;
      if (s.code() != ErrorCode::kResourceExhausted) return s;
      PIO_ASSIGN_OR_RETURN(short revents, wait_for(socket_.get(), POLLOUT, deadline));
      if (revents == 0) {
        return deadline_exceeded_error("control socket stayed full until the deadline");
      }
    }
  }
  Status pushed = writer_.try_push(via_socket ? LaneSlotKind::kOnSocket : LaneSlotKind::kInline,
                                   via_socket ? std::span<const uint8_t>() : envelope);
  if (!pushed.ok()) return fail(pushed);  // space was checked, so only a violation gets here
  if (writer_.take_consumer_sleeping()) {
    const uint8_t wake = kWakeByte;
    Status s = send_packet(socket_.get(), {&wake, 1}, {}, MSG_DONTWAIT);
    // A full socket means the peer has unread packets and will look at its lane anyway.
    if (!s.ok() && s.code() != ErrorCode::kResourceExhausted) {
      return unavailable_error("the peer closed the control channel: " + s.message());
    }
  }
  return ok_status();
}

Status Channel::wait_for_lane_space(Deadline deadline) {
  // A full lane is backpressure: the consumer is behind. Poll with a growing pause, checking that
  // the peer is still there, until the deadline. Nothing is dropped.
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    Result<bool> space = writer_.has_space();
    if (!space.ok()) return fail(space.status());
    if (*space) return ok_status();
    PIO_ASSIGN_OR_RETURN(short revents, wait_for(socket_.get(), 0, Clock::now()));
    if (revents & (POLLHUP | POLLERR)) {
      return unavailable_error("the peer closed the control channel while its lane was full");
    }
    if (Clock::now() >= deadline) {
      return deadline_exceeded_error(
          "message lane stayed full until the deadline (peer not reading)");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

Status Channel::receive(InboundMessage* out, Deadline deadline) {
  std::lock_guard lock(receive_mu_);
  if (broken()) return failed_precondition_error("channel is broken after a protocol violation");
  Result<bool> got = false;
  spin_until([&] { return !(got = try_receive_locked(out)).ok() || *got; }, options_.spin);
  if (!got.ok() || *got) return got.status();
  for (;;) {
    reader_.announce_sleeping();
    got = try_receive_locked(out);
    if (!got.ok() || *got) {
      reader_.withdraw_sleeping();
      return got.status();
    }
    if (peer_closed_) return unavailable_error("the peer closed the control channel");
    PIO_ASSIGN_OR_RETURN(short revents, wait_for(socket_.get(), POLLIN, deadline));
    if (revents == 0) {
      reader_.withdraw_sleeping();
      return deadline_exceeded_error("no message from the peer before the deadline");
    }
    PIO_RETURN_IF_ERROR(drain_socket_locked());
  }
}

Result<bool> Channel::try_receive(InboundMessage* out) {
  std::lock_guard lock(receive_mu_);
  if (broken()) return failed_precondition_error("channel is broken after a protocol violation");
  PIO_ASSIGN_OR_RETURN(bool got, try_receive_locked(out));
  if (!got && peer_closed_) return unavailable_error("the peer closed the control channel");
  return got;
}

Result<bool> Channel::arm_wakeup() {
  std::lock_guard lock(receive_mu_);
  reader_.announce_sleeping();
  // Peek: a message published before the announcement would otherwise wait for the next wake.
  Result<bool> waiting = reader_.has_message();
  if (!waiting.ok()) return fail(waiting.status());
  if (*waiting) reader_.withdraw_sleeping();
  // A packet in the inbox without its marker yet is not a reason to skip the wait: the marker's
  // publication will wake us.
  return *waiting || peer_closed_;
}

Status Channel::drain_socket() {
  std::lock_guard lock(receive_mu_);
  return drain_socket_locked();
}

Result<bool> Channel::try_receive_locked(InboundMessage* out) {
  LaneSlotKind kind;
  Result<bool> popped = reader_.try_pop(&kind, &out->bytes_);
  if (!popped.ok()) return fail(popped.status());
  if (!*popped) return false;
  out->fds_.clear();
  out->envelope_ = nullptr;
  if (kind == LaneSlotKind::kOnSocket) {
    // The sender put the packet on the socket before publishing its marker, so it is there.
    if (socket_inbox_.empty()) PIO_RETURN_IF_ERROR(drain_socket_locked());
    if (socket_inbox_.empty()) {
      return fail(violation("the lane announced a socket packet that never came"));
    }
    SocketPacket& packet = socket_inbox_.front();
    held_fds_ -= packet.fds.size();
    out->bytes_ = std::move(packet.bytes);
    out->fds_ = std::move(packet.fds);
    socket_inbox_.pop_front();
  }
  Result<const wire::Envelope*> envelope = verify_envelope(out->bytes_, options_.limits);
  if (!envelope.ok()) return fail(violation(envelope.status().message()));
  out->envelope_ = *envelope;
  return true;
}

Status Channel::drain_socket_locked() {
  for (;;) {
    Result<ReceivedPacket> packet =
        receive_packet(socket_.get(), &scratch_, options_.limits.max_bytes, MSG_DONTWAIT);
    if (!packet.ok()) {
      const ErrorCode code = packet.status().code();
      if (code == ErrorCode::kResourceExhausted) return ok_status();  // drained
      if (code == ErrorCode::kInvalidArgument) return fail(violation(packet.status().message()));
      peer_closed_ = true;  // ECONNRESET and friends: the peer is gone
      return ok_status();
    }
    if (packet->end_of_stream) {
      peer_closed_ = true;
      return ok_status();
    }
    if (scratch_.size() == 1 && scratch_[0] == kWakeByte) continue;
    // A broken channel is never read again: close what it held now, not when its owner gets to
    // destroying it (this packet's own descriptors close as `packet` goes).
    if (socket_inbox_.size() >= max_inbox_) {
      drop_inbox_locked();
      return fail(
          violation(fmt::format("more than {} socket packets without lane markers", max_inbox_)));
    }
    if (held_fds_ + packet->fds.size() > options_.max_held_fds) {
      drop_inbox_locked();
      return fail(violation(fmt::format("more than {} descriptors sent ahead of their lane markers",
                                        options_.max_held_fds)));
    }
    held_fds_ += packet->fds.size();
    socket_inbox_.push_back(SocketPacket{std::move(scratch_), std::move(packet->fds)});
    scratch_ = {};
  }
}

void Channel::drop_inbox_locked() {
  socket_inbox_.clear();
  held_fds_ = 0;
}

}  // namespace pio::ipc
