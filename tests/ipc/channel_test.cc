#include "pio/ipc/channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "ipc_test_process.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/socket_packet.h"

namespace pio::ipc {
namespace {

using testing::PeerProcess;
using namespace std::chrono_literals;

// One sample of every message kind, with its fields set.
std::vector<uint8_t> build_sample(wire::Message type, uint64_t id, size_t padding = 0) {
  flatbuffers::FlatBufferBuilder fbb;
  flatbuffers::Offset<void> body;
  const std::string pad(padding, 'x');
  switch (type) {
    case wire::Message::Hello: {
      std::vector<flatbuffers::Offset<flatbuffers::String>> caps{fbb.CreateString("lanes"),
                                                                 fbb.CreateString("cuda")};
      body = wire::CreateHelloDirect(fbb, 1, 4242, "0.1.0", "echo", 1, &caps).Union();
      break;
    }
    case wire::Message::Initialize:
      body = wire::CreateInitializeDirect(fbb, ("{\"a\":1}" + pad).c_str()).Union();
      break;
    case wire::Message::LoadModel:
      body = wire::CreateLoadModelDirect(fbb, "/srv/models/qwen3", "{}").Union();
      break;
    case wire::Message::Infer: {
      std::vector<int64_t> shape{2, 3};
      std::vector<flatbuffers::Offset<wire::TensorDesc>> inputs{
          wire::CreateTensorDescDirect(fbb, "x", wire::DType::BF16, &shape, wire::Device::Cpu,
                                       wire::Ring::HostToWorker, 4096, 12)};
      body = wire::CreateInferDirect(fbb, &inputs, "infer", "{}", 1000).Union();
      break;
    }
    case wire::Message::Generate: {
      std::vector<flatbuffers::Offset<flatbuffers::String>> stop{fbb.CreateString("</s>")};
      auto params = wire::CreateSamplingParamsDirect(fbb, 32, 0.7f, 20, 0.8f, 0.0f, 1.1f, 0.0f,
                                                     0.0f, 7, true, &stop);
      std::vector<int32_t> ids{1, 2, 3};
      body = wire::CreateGenerateDirect(fbb, "hello", &ids, nullptr, params, true, 5000).Union();
      break;
    }
    case wire::Message::TokenChunk: {
      std::vector<int32_t> ids{151645};
      std::vector<float> lp{-0.25f};
      body = wire::CreateTokenChunkDirect(fbb, &ids, "héllo", &lp, wire::FinishReason::Stop, 3, 1)
                 .Union();
      break;
    }
    case wire::Message::Result:
      body = wire::CreateResultDirect(fbb, nullptr, ("{\"ok\":true}" + pad).c_str()).Union();
      break;
    case wire::Message::Error:
      body = wire::CreateErrorDirect(fbb, wire::ErrorCode::NotFound, "no such model").Union();
      break;
    case wire::Message::Cancel:
      body = wire::CreateCancel(fbb, 17).Union();
      break;
    case wire::Message::Release: {
      std::vector<int64_t> shape{4};
      std::vector<flatbuffers::Offset<wire::TensorDesc>> t{wire::CreateTensorDescDirect(
          fbb, "y", wire::DType::F32, &shape, wire::Device::Cpu, wire::Ring::WorkerToHost, 0, 16)};
      body = wire::CreateReleaseDirect(fbb, &t).Union();
      break;
    }
    case wire::Message::Heartbeat:
      body = wire::CreateHeartbeat(fbb, 99, false).Union();
      break;
    case wire::Message::Stats: {
      std::vector<flatbuffers::Offset<wire::KeyValue>> kv{
          wire::CreateKeyValueDirect(fbb, "kv_blocks", "12")};
      body = wire::CreateStatsDirect(fbb, 1 << 20, 0, 1, 100, &kv).Union();
      break;
    }
    case wire::Message::Shutdown:
      body = wire::CreateShutdownDirect(fbb, 500, "test over").Union();
      break;
    default:
      ADD_FAILURE() << "no sample for message type " << static_cast<int>(type);
  }
  finish_envelope(fbb, id, type, body);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::vector<wire::Message> all_message_types() {
  std::vector<wire::Message> types;
  for (auto t : wire::EnumValuesMessage()) {
    if (t != wire::Message::NONE) types.push_back(t);
  }
  return types;
}

TEST(Channel, EveryMessageKindRoundTripsBetweenTwoProcesses) {
  PeerProcess peer = PeerProcess::start("echo");
  InboundMessage in;
  uint64_t id = 1;
  const auto types = all_message_types();
  ASSERT_EQ(types.size(), 13u);
  for (wire::Message type : types) {
    if (type == wire::Message::Shutdown) continue;  // ends the peer; sent last
    const auto sent = build_sample(type, id);
    ASSERT_TRUE(peer.channel().send(sent).ok());
    Status s = peer.channel().receive(&in, deadline_after(10s));
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(in.type(), type) << message_type_name(type);
    EXPECT_EQ(in.request_id(), id);
    EXPECT_EQ(std::vector<uint8_t>(in.bytes().begin(), in.bytes().end()), sent)
        << message_type_name(type);
    ++id;
  }
  // Field-level check on two of them, read through the verified envelope.
  ASSERT_TRUE(peer.channel().send(build_sample(wire::Message::TokenChunk, 500)).ok());
  ASSERT_TRUE(peer.channel().receive(&in, deadline_after(10s)).ok());
  const auto* chunk = in.envelope().message_as_TokenChunk();
  ASSERT_NE(chunk, nullptr);
  EXPECT_EQ(chunk->text()->str(), "héllo");
  EXPECT_EQ(chunk->token_ids()->Get(0), 151645);
  EXPECT_EQ(chunk->finish_reason(), wire::FinishReason::Stop);

  ASSERT_TRUE(peer.channel().send(build_sample(wire::Message::Shutdown, 501)).ok());
  ASSERT_TRUE(peer.channel().receive(&in, deadline_after(10s)).ok());
  EXPECT_EQ(in.type(), wire::Message::Shutdown);
  const int status = peer.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Channel, LargeMessagesTravelOnTheSocketAndKeepTheirOrderWithSmallOnes) {
  PeerProcess peer = PeerProcess::start("echo");
  // Slots hold 1008 bytes in the test config: alternate messages above and below that. Batches of
  // four keep the echo peer from blocking on a socket buffer nobody drains.
  InboundMessage in;
  uint64_t id = 1;
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<std::vector<uint8_t>> sent;
    for (int i = 0; i < 4; ++i, ++id) {
      sent.push_back(build_sample(wire::Message::Result, id, id % 2 == 0 ? 50'000 : 10));
      ASSERT_TRUE(peer.channel().send(sent.back(), {}, deadline_after(10s)).ok());
    }
    for (int i = 0; i < 4; ++i) {
      Status s = peer.channel().receive(&in, deadline_after(10s));
      ASSERT_TRUE(s.ok()) << s.to_string();
      EXPECT_EQ(in.request_id(), id - 4 + i);
      EXPECT_EQ(std::vector<uint8_t>(in.bytes().begin(), in.bytes().end()), sent[i]);
    }
  }
}

TEST(Channel, DescriptorsPassWithAMessageAndReferToTheSameFile) {
  PeerProcess peer = PeerProcess::start("echo");
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  const int fds[] = {r.get(), w.get()};
  ASSERT_TRUE(peer.channel().send(build_sample(wire::Message::LoadModel, 7), fds).ok());
  InboundMessage in;
  ASSERT_TRUE(peer.channel().receive(&in, deadline_after(10s)).ok());
  ASSERT_EQ(in.fds().size(), 2u);
  struct stat original {
  }, returned{};
  ASSERT_EQ(fstat(r.get(), &original), 0);
  ASSERT_EQ(fstat(in.fds()[0].get(), &returned), 0);
  EXPECT_EQ(original.st_ino, returned.st_ino);
  // The returned write end really is the pipe's.
  ASSERT_EQ(write(in.fds()[1].get(), "k", 1), 1);
  char c = 0;
  ASSERT_EQ(read(r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'k');
}

TEST(Channel, AFullLaneHoldsTheSenderBackAndLosesNothing) {
  PeerProcess peer = PeerProcess::start("echo");
  // Stop the peer so nobody drains the lane.
  ASSERT_EQ(kill(peer.pid(), SIGSTOP), 0);
  const uint32_t slots = peer.layout().config().lane_slots;
  uint64_t id = 1;
  for (; id <= slots; ++id) {
    ASSERT_TRUE(peer.channel().send(build_sample(wire::Message::Heartbeat, id)).ok());
  }
  Status full =
      peer.channel().send(build_sample(wire::Message::Heartbeat, id), {}, deadline_after(30ms));
  EXPECT_EQ(full.code(), ErrorCode::kDeadlineExceeded) << full.to_string();
  EXPECT_FALSE(peer.channel().broken());
  ASSERT_EQ(kill(peer.pid(), SIGCONT), 0);
  // Now the send that waited goes through, and every message comes back once, in order.
  ASSERT_TRUE(peer.channel()
                  .send(build_sample(wire::Message::Heartbeat, id), {}, deadline_after(10s))
                  .ok());
  InboundMessage in;
  for (uint64_t expect = 1; expect <= id; ++expect) {
    Status s = peer.channel().receive(&in, deadline_after(10s));
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(in.request_id(), expect);
  }
}

TEST(Channel, PeerDeathMidWriteEndsTheReceiveWithUnavailable) {
  PeerProcess peer = PeerProcess::start("die-mid-write");
  InboundMessage in;
  Status s = peer.channel().receive(&in, deadline_after(10s));
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << s.to_string();
  const int status = peer.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(Channel, ReceiveWithNothingSentEndsAtTheDeadline) {
  PeerProcess peer = PeerProcess::start("echo");
  InboundMessage in;
  Status s = peer.channel().receive(&in, deadline_after(20ms));
  EXPECT_EQ(s.code(), ErrorCode::kDeadlineExceeded) << s.to_string();
  EXPECT_FALSE(peer.channel().broken());
}

TEST(Channel, SendToADeadPeerReportsUnavailable) {
  PeerProcess peer = PeerProcess::start("echo");
  peer.kill_now();
  peer.wait();
  // The lane has room, so the first small send succeeds into shared memory; the peer's death
  // shows no later than the first send that has to touch the socket.
  Status s;
  for (int i = 0; i < 100 && s.ok(); ++i) {
    s = peer.channel().send(build_sample(wire::Message::Result, 1, 100'000), {},
                            deadline_after(1s));
  }
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable) << s.to_string();
}

TEST(ShmArena, ClosingTheDescriptorKeepsTheMappingUsable) {
  auto arena = ShmArena::create("close-fd", 8192);
  ASSERT_TRUE(arena.ok());
  const int fd = arena->fd();
  arena->data()[100] = std::byte{42};
  arena->close_fd();
  EXPECT_EQ(arena->fd(), -1);
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);  // really closed
  EXPECT_EQ(arena->data()[100], std::byte{42});
  arena->data()[8191] = std::byte{7};
}

TEST(ShmArena, MappingAnUnsealedDescriptorIsRefused) {
  UniqueFd fd(memfd_create("unsealed", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(ftruncate(fd.get(), 8192), 0);
  auto arena = ShmArena::map_existing(std::move(fd), 4096);
  ASSERT_FALSE(arena.ok());
  EXPECT_NE(arena.status().message().find("not sealed"), std::string::npos)
      << arena.status().message();
}

TEST(ShmArena, MappingAnArenaSmallerThanExpectedIsRefused) {
  auto arena = ShmArena::create("small", 4096);
  ASSERT_TRUE(arena.ok());
  auto again = ShmArena::map_existing(UniqueFd(dup(arena->fd())), 1 << 20);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("smaller than"), std::string::npos);
}

}  // namespace
}  // namespace pio::ipc
