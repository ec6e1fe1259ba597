#include "pio/ipc/channel_reader.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "ipc_test_process.h"
#include "pio/ipc/envelope.h"

namespace pio::ipc {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;

std::vector<uint8_t> heartbeat(uint64_t id) {
  flatbuffers::FlatBufferBuilder fbb;
  finish_envelope(fbb, id, wire::Message::Heartbeat, wire::CreateHeartbeat(fbb, id).Union());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

TEST(ChannelReader, DeliversEveryReplyOnTheLoopAndReportsThePeersDeath) {
  PeerProcess peer = PeerProcess::start("echo");
  boost::asio::io_context io;
  std::vector<uint64_t> ids;
  std::optional<Status> ended;
  const std::thread::id test_thread = std::this_thread::get_id();
  std::thread::id handler_thread;
  auto reader = ChannelReader::start(
      io, peer.channel(),
      [&](InboundMessage& m) {
        handler_thread = std::this_thread::get_id();
        ids.push_back(m.request_id());
        if (ids.size() == 50) peer.kill_now();
      },
      [&](const Status& s) { ended = s; });
  ASSERT_TRUE(reader.ok()) << reader.status().to_string();
  std::thread loop([&] { io.run(); });
  // Sends from another thread, with pauses so the reader really sleeps on the socket between.
  for (uint64_t id = 1; id <= 50; ++id) {
    ASSERT_TRUE(peer.channel().send(heartbeat(id), {}, deadline_after(10s)).ok());
    if (id % 10 == 0) std::this_thread::sleep_for(2ms);
  }
  loop.join();  // returns once the reader stops waiting: after the peer's death was reported
  ASSERT_EQ(ids.size(), 50u);
  for (uint64_t i = 0; i < 50; ++i) EXPECT_EQ(ids[i], i + 1);
  EXPECT_NE(handler_thread, test_thread);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code(), ErrorCode::kUnavailable) << ended->to_string();
}

TEST(ChannelReader, StopsAtTheFirstProtocolViolation) {
  PeerProcess peer = PeerProcess::start("echo");
  boost::asio::io_context io;
  std::optional<Status> ended;
  int delivered = 0;
  auto reader = ChannelReader::start(
      io, peer.channel(), [&](InboundMessage&) { ++delivered; },
      [&](const Status& s) { ended = s; });
  ASSERT_TRUE(reader.ok());
  // The "worker" claims its first slot holds message 999.
  std::byte* lane = peer.arena().data() + peer.layout().lane_worker_to_host().offset;
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(lane + MessageLane::kSlotsOffset + 8))
      .store(999);
  io.run_for(2s);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->code(), ErrorCode::kInvalidArgument) << ended->to_string();
  EXPECT_EQ(delivered, 0);
}

}  // namespace
}  // namespace pio::ipc
