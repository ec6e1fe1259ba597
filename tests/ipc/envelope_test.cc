#include "pio/ipc/envelope.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace pio::ipc {
namespace {

std::vector<uint8_t> token_chunk_bytes(const std::vector<int32_t>& ids) {
  flatbuffers::FlatBufferBuilder fbb;
  auto chunk = wire::CreateTokenChunkDirect(fbb, &ids, "abc");
  finish_envelope(fbb, 9, wire::Message::TokenChunk, chunk.Union());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

void expect_rejected(const std::vector<uint8_t>& bytes, std::string_view phrase,
                     const EnvelopeLimits& limits = {}) {
  auto r = verify_envelope(bytes, limits);
  ASSERT_FALSE(r.ok()) << "accepted a bad packet";
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(phrase), std::string::npos) << r.status().message();
}

TEST(VerifyEnvelope, AcceptsAWellFormedEnvelopeAndReadsItsFields) {
  auto bytes = token_chunk_bytes({11, 22, 33});
  auto r = verify_envelope(bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)->request_id(), 9u);
  ASSERT_EQ((*r)->message_type(), wire::Message::TokenChunk);
  EXPECT_EQ((*r)->message_as_TokenChunk()->token_ids()->size(), 3u);
}

TEST(VerifyEnvelope, RejectsEveryTruncationOfAValidPacket) {
  auto bytes = token_chunk_bytes({11, 22, 33, 44});
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    EXPECT_FALSE(verify_envelope(cut).ok()) << "accepted a packet cut to " << n << " bytes";
  }
}

TEST(VerifyEnvelope, RejectsARootOffsetPointingOutsideThePacket) {
  auto bytes = token_chunk_bytes({1});
  const uint32_t bad = static_cast<uint32_t>(bytes.size()) + 64;
  std::memcpy(bytes.data(), &bad, 4);
  expect_rejected(bytes, "failed verification");
}

TEST(VerifyEnvelope, RejectsAVectorWhoseLengthLies) {
  const std::vector<int32_t> ids{0x11111111, 0x22222222, 0x33333333, 0x44444444};
  auto bytes = token_chunk_bytes(ids);
  // Find the vector: its u32 length (4) followed by the elements.
  std::vector<uint8_t> pattern(4 + 16);
  const uint32_t len = 4;
  std::memcpy(pattern.data(), &len, 4);
  std::memcpy(pattern.data() + 4, ids.data(), 16);
  auto it = std::search(bytes.begin(), bytes.end(), pattern.begin(), pattern.end());
  ASSERT_NE(it, bytes.end());
  for (uint32_t lie : {5u, 1000u, 0x3fffffffu, 0xffffffffu}) {
    std::memcpy(&*it, &lie, 4);
    expect_rejected(bytes, "failed verification");
  }
}

TEST(VerifyEnvelope, RejectsNestingDeeperThanTheLimit) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> handle(64, 1);
  auto cuda = wire::CreateCudaIpcRefDirect(fbb, &handle, &handle, 0, 0, 1);
  std::vector<int64_t> shape{1};
  std::vector<flatbuffers::Offset<wire::TensorDesc>> inputs{
      wire::CreateTensorDescDirect(fbb, "x", wire::DType::F32, &shape, wire::Device::Cuda,
                                   wire::Ring::HostToWorker, 0, 4, cuda)};
  auto infer = wire::CreateInferDirect(fbb, &inputs);
  finish_envelope(fbb, 1, wire::Message::Infer, infer.Union());
  std::vector<uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  EXPECT_TRUE(verify_envelope(bytes).ok());
  EnvelopeLimits shallow;
  shallow.max_depth = 3;
  expect_rejected(bytes, "nests deeper than 3", shallow);
}

TEST(VerifyEnvelope, RejectsMoreTablesThanTheLimit) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TensorDesc>> many;
  for (int i = 0; i < 100; ++i) many.push_back(wire::CreateTensorDescDirect(fbb, "t"));
  auto release = wire::CreateReleaseDirect(fbb, &many);
  finish_envelope(fbb, 1, wire::Message::Release, release.Union());
  std::vector<uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  EnvelopeLimits few;
  few.max_tables = 50;
  expect_rejected(bytes, "more than 50 tables", few);
}

TEST(VerifyEnvelope, RejectsAPacketOverTheSizeLimitBeforeReadingIt) {
  std::vector<uint8_t> bytes(2 << 20, 0);
  expect_rejected(bytes, "exceeds the 1048576-byte limit");
}

TEST(VerifyEnvelope, RejectsAnUnknownMessageType) {
  flatbuffers::FlatBufferBuilder fbb;
  auto hb = wire::CreateHeartbeat(fbb, 1);
  finish_envelope(fbb, 1, static_cast<wire::Message>(200), hb.Union());
  std::vector<uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  expect_rejected(bytes, "unknown message type 200");
}

TEST(VerifyEnvelope, RejectsAnEnvelopeWithoutAMessage) {
  flatbuffers::FlatBufferBuilder fbb;
  finish_envelope(fbb, 1, wire::Message::NONE, 0);
  std::vector<uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  expect_rejected(bytes, "unknown message type 0");
}

TEST(VerifyEnvelope, RejectsBytesWithoutTheFileIdentifier) {
  auto bytes = token_chunk_bytes({1});
  bytes[4] = 'X';
  expect_rejected(bytes, "identifier");
}

TEST(VerifyEnvelope, RejectsTinyPacketsAsTruncated) { expect_rejected({1, 2, 3}, "truncated"); }

}  // namespace
}  // namespace pio::ipc
