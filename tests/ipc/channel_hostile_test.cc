// The host's end of a channel against a peer that lies: raw bytes in the lane and on the socket,
// impossible indices, a scribbling process. The host must report each, never crash or hang.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <optional>
#include <thread>

#include "ipc_test_process.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/socket_packet.h"
#include "pio/ipc/tensor_view.h"

namespace pio::ipc {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;

std::atomic_ref<uint64_t> lane_word(std::byte* lane, uint64_t offset) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(lane + offset));
}

// A host Channel whose peer is this test, writing raw bytes.
class HostileChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layout = ArenaLayout::compute(PeerProcess::small_config());
    ASSERT_TRUE(layout.ok());
    layout_ = *layout;
    auto arena = ShmArena::create("hostile", layout_->total_size());
    ASSERT_TRUE(arena.ok());
    arena_.emplace(std::move(*arena));
    Channel::prepare_arena(*arena_, *layout_);
    auto sockets = make_packet_socketpair();
    ASSERT_TRUE(sockets.ok());
    peer_socket_ = std::move(sockets->second);
    auto channel =
        Channel::create(std::move(sockets->first), *arena_, *layout_, ChannelSide::kHost);
    ASSERT_TRUE(channel.ok());
    host_.emplace(std::move(*channel));
    lane_ = arena_->data() + layout_->lane_worker_to_host().offset;
    peer_writer_ =
        LaneWriter(lane_, layout_->config().lane_slots, layout_->config().lane_slot_bytes);
  }

  static std::vector<uint8_t> heartbeat(uint64_t id) {
    flatbuffers::FlatBufferBuilder fbb;
    finish_envelope(fbb, id, wire::Message::Heartbeat, wire::CreateHeartbeat(fbb, id).Union());
    return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
  }

  // Receives once and expects a protocol violation naming `phrase`, and a broken channel.
  void expect_violation(std::string_view phrase) {
    InboundMessage in;
    Status s = host_->receive(&in, deadline_after(2s));
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(s.message().find("protocol violation"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(phrase), std::string::npos) << s.message();
    EXPECT_TRUE(host_->broken());
    // Every later call fails at once rather than reading more of the peer's bytes.
    EXPECT_EQ(host_->receive(&in, deadline_after(1s)).code(), ErrorCode::kFailedPrecondition);
  }

  std::optional<ArenaLayout> layout_;
  std::optional<ShmArena> arena_;
  std::optional<Channel> host_;
  UniqueFd peer_socket_;
  std::byte* lane_ = nullptr;
  LaneWriter peer_writer_;
};

TEST_F(HostileChannel, AGoodMessageFromTheRawPeerIsReceived) {
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kInline, heartbeat(5)).ok());
  InboundMessage in;
  ASSERT_TRUE(host_->receive(&in, deadline_after(2s)).ok());
  EXPECT_EQ(in.request_id(), 5u);
}

TEST_F(HostileChannel, TruncatedPacketInTheLaneIsAViolation) {
  auto bytes = heartbeat(1);
  bytes.resize(bytes.size() / 2);
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kInline, bytes).ok());
  expect_violation("failed verification");
}

TEST_F(HostileChannel, UnknownUnionTypeOnTheSocketIsAViolation) {
  flatbuffers::FlatBufferBuilder fbb;
  finish_envelope(fbb, 1, static_cast<wire::Message>(77), wire::CreateHeartbeat(fbb, 1).Union());
  ASSERT_TRUE(send_packet(peer_socket_.get(), builder_bytes(fbb)).ok());
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kOnSocket, {}).ok());
  expect_violation("unknown message type 77");
}

TEST_F(HostileChannel, OversizedSocketPacketIsRefusedWithoutReadingIt) {
  const int buffer = 4 << 20;
  ASSERT_EQ(setsockopt(peer_socket_.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer)), 0);
  std::vector<uint8_t> huge((1 << 20) + 1, 0x41);
  ASSERT_TRUE(send_packet(peer_socket_.get(), huge).ok());
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kOnSocket, {}).ok());
  expect_violation("oversized packet");
}

TEST_F(HostileChannel, SlotLengthLargerThanTheSlotIsAViolation) {
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kInline, heartbeat(1)).ok());
  const uint32_t lie = 1u << 30;
  std::memcpy(lane_ + MessageLane::kSlotsOffset, &lie, 4);
  expect_violation("more than the");
}

TEST_F(HostileChannel, UnknownSlotKindIsAViolation) {
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kInline, heartbeat(1)).ok());
  const uint32_t kind = 9;
  std::memcpy(lane_ + MessageLane::kSlotsOffset + 4, &kind, 4);
  expect_violation("unknown kind 9");
}

// The first slot's sequence word: the number of the message it holds (1-based).
constexpr uint64_t kFirstSlotSequence = MessageLane::kSlotsOffset + 8;

TEST_F(HostileChannel, SlotNumberFromAFutureLapIsAViolation) {
  lane_word(lane_, kFirstSlotSequence).store(1000);  // message 1000 in a 16-slot lane at start
  expect_violation("holds message number 1000");
}

TEST_F(HostileChannel, SlotNumberGoingBackwardsIsAViolation) {
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kInline, heartbeat(i)).ok());
  }
  InboundMessage in;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(host_->receive(&in, deadline_after(2s)).ok());
  // Slot 3 claims message 2, which was read already.
  const uint32_t slot_bytes = layout_->config().lane_slot_bytes;
  lane_word(lane_, kFirstSlotSequence + 3 * slot_bytes).store(2);
  expect_violation("holds message number 2");
}

TEST_F(HostileChannel, TailIndexThePeerCannotHaveReachedIsAViolationForTheSender) {
  std::byte* h2w = arena_->data() + layout_->lane_host_to_worker().offset;
  // Fill the lane so the sender must look at the consumer's tail again.
  for (uint32_t i = 0; i < layout_->config().lane_slots; ++i) {
    ASSERT_TRUE(host_->send(heartbeat(i)).ok());
  }
  lane_word(h2w, 64).store(12345);  // the worker "consumed" messages never sent
  Status s = host_->send(heartbeat(1), {}, deadline_after(1s));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("impossible"), std::string::npos);
  EXPECT_TRUE(host_->broken());
}

TEST_F(HostileChannel, MarkerWithoutASocketPacketIsAViolation) {
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kOnSocket, {}).ok());
  expect_violation("never came");
}

TEST_F(HostileChannel, SocketPacketsWithoutMarkersCannotPileUpInTheHost) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(send_packet(peer_socket_.get(), heartbeat(i)).ok());
  expect_violation("without lane markers");
}

TEST_F(HostileChannel, TooManyDescriptorsInOnePacketAreRefusedAndClosed) {
  std::vector<UniqueFd> pipes;
  std::vector<int> raw;
  // send_packet itself refuses more than 8, so build the control message by hand.
  for (int i = 0; i < 6; ++i) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pipes.emplace_back(p[0]);
    pipes.emplace_back(p[1]);
    raw.push_back(p[0]);
    raw.push_back(p[1]);
  }
  auto bytes = heartbeat(1);
  iovec iov{bytes.data(), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 12)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * 12);
  std::memcpy(CMSG_DATA(c), raw.data(), sizeof(int) * 12);
  ASSERT_GT(sendmsg(peer_socket_.get(), &msg, 0), 0);
  ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kOnSocket, {}).ok());
  expect_violation("more than 8 descriptors");
}

size_t open_fd_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

TEST_F(HostileChannel, AWorkerHoldingTooManyDescriptorsBreaksTheChannelAndTheyAreClosed) {
  UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(null_fd);
  const std::vector<int> full_packet(kMaxFdsPerPacket, null_fd.get());
  const size_t before = open_fd_count();
  // Fewer packets than the lane has slots, each with a full load of descriptors and no marker:
  // unbounded, the host would hold all 80 of them for as long as the worker lives.
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(send_packet(peer_socket_.get(), heartbeat(i), full_packet).ok());
  }
  expect_violation("descriptors sent ahead of their lane markers");
  EXPECT_EQ(open_fd_count(), before);
}

TEST_F(HostileChannel, DescriptorsWithinTheBoundStillReachTheReceiver) {
  UniqueFd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(null_fd);
  const std::vector<int> full_packet(kMaxFdsPerPacket, null_fd.get());
  // Two packets sent before their markers: both are held until the markers come.
  const size_t packets = ChannelOptions{}.max_held_fds / kMaxFdsPerPacket;
  for (uint64_t i = 0; i < packets; ++i) {
    ASSERT_TRUE(send_packet(peer_socket_.get(), heartbeat(i), full_packet).ok());
  }
  ASSERT_TRUE(host_->drain_socket().ok());
  EXPECT_FALSE(host_->broken());
  for (uint64_t i = 0; i < packets; ++i) {
    ASSERT_TRUE(peer_writer_.try_push(LaneSlotKind::kOnSocket, {}).ok());
    InboundMessage in;
    ASSERT_TRUE(host_->receive(&in, deadline_after(2s)).ok());
    EXPECT_EQ(in.request_id(), i);
    EXPECT_EQ(in.fds().size(), kMaxFdsPerPacket);
  }
}

TEST_F(HostileChannel, AViolationOnOneChannelLeavesAnotherChannelWorking) {
  lane_word(lane_, kFirstSlotSequence).store(1000);
  expect_violation("holds message number");
  PeerProcess healthy = PeerProcess::start("echo");
  ASSERT_TRUE(healthy.channel().send(heartbeat(42)).ok());
  InboundMessage in;
  ASSERT_TRUE(healthy.channel().receive(&in, deadline_after(10s)).ok());
  EXPECT_EQ(in.request_id(), 42u);
}

// A real second process writes random bytes over the whole arena (lanes, headers, rings) while
// it sends Result messages whose tensors point into its ring, some of them out of bounds. The host
// keeps receiving and reading every tensor it accepts. Run under ASan by scripts/test.sh.
TEST(ChannelUnderScribbling, HostNeverReadsOutsideTheArenaWhileThePeerScribbles) {
  PeerProcess peer = PeerProcess::start("scribble");
  const ArenaLayout layout = peer.layout();
  const RegionBounds bounds{peer.arena().data(), layout.ring_worker_to_host().offset,
                            layout.ring_worker_to_host().size};
  std::optional<Channel> fresh;
  Channel* channel = &peer.channel();
  int received = 0, violations = 0, tensors_read = 0, tensors_refused = 0;
  uint64_t checksum = 0;
  InboundMessage in;
  const auto until = Clock::now() + 1500ms;
  while (Clock::now() < until) {
    Status s = channel->receive(&in, deadline_after(20ms));
    if (s.ok()) {
      ++received;
      if (in.type() != wire::Message::Result) continue;
      const auto* outputs = in.envelope().message_as_Result()->outputs();
      if (outputs == nullptr) continue;
      for (const auto* desc : *outputs) {
        auto view = validate_tensor_desc(desc, wire::Ring::WorkerToHost, bounds);
        if (!view.ok()) {
          ++tensors_refused;
          continue;
        }
        const auto* p = reinterpret_cast<const unsigned char*>(view->data);
        checksum = std::accumulate(p, p + view->length, checksum);
        ++tensors_read;
      }
    } else if (channel->broken()) {
      ++violations;
      auto again = Channel::create(UniqueFd(dup(channel->socket_fd())), peer.arena(), layout,
                                   ChannelSide::kHost);
      ASSERT_TRUE(again.ok());
      fresh.reset();
      fresh.emplace(std::move(*again));
      channel = &*fresh;
    } else {
      ASSERT_EQ(s.code(), ErrorCode::kDeadlineExceeded) << s.to_string();
    }
  }
  // The scribbling was seen, and the host went on working through it.
  EXPECT_GT(violations, 0);
  EXPECT_GT(received + violations, 10);
  RecordProperty("received", received);
  RecordProperty("violations", violations);
  RecordProperty("tensors_read", tensors_read);
  RecordProperty("tensors_refused", tensors_refused);
  (void)checksum;
}

}  // namespace
}  // namespace pio::ipc
