#include "pio/ipc/tensor_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "pio/ipc/shm_ring.h"

namespace pio::ipc {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using wire::Device;
using wire::DType;
using wire::Ring;

constexpr uint64_t kRingOffset = 4096;
constexpr uint64_t kRingSize = 2048;

// A descriptor with every field settable to anything, including values a well-behaved writer
// never produces. Defaults: a valid F32 [2, 3] tensor at the start of the worker->host ring.
struct RawDesc {
  std::optional<std::string> name = "w";
  uint8_t dtype = static_cast<uint8_t>(DType::F32);
  std::optional<std::vector<int64_t>> shape = std::vector<int64_t>{2, 3};
  uint8_t device = static_cast<uint8_t>(Device::Cpu);
  uint8_t ring = static_cast<uint8_t>(Ring::WorkerToHost);
  uint64_t offset = kRingOffset;
  uint64_t length = 24;
  bool with_cuda = false;
};

// Serialises a RawDesc, runs the flatbuffers Verifier over it as the host does, and keeps the
// bytes alive for the descriptor it returns.
class DescBuffer {
 public:
  explicit DescBuffer(const RawDesc& raw) {
    flatbuffers::Offset<flatbuffers::String> name;
    if (raw.name) name = fbb_.CreateString(*raw.name);
    flatbuffers::Offset<flatbuffers::Vector<int64_t>> shape;
    if (raw.shape) shape = fbb_.CreateVector(*raw.shape);
    flatbuffers::Offset<wire::CudaIpcRef> cuda;
    if (raw.with_cuda) cuda = wire::CreateCudaIpcRef(fbb_);
    wire::TensorDescBuilder b(fbb_);
    if (raw.name) b.add_name(name);
    if (raw.shape) b.add_shape(shape);
    if (raw.with_cuda) b.add_cuda(cuda);
    b.add_dtype(static_cast<DType>(raw.dtype));
    b.add_device(static_cast<Device>(raw.device));
    b.add_ring(static_cast<Ring>(raw.ring));
    b.add_offset(raw.offset);
    b.add_length(raw.length);
    fbb_.Finish(b.Finish());
    flatbuffers::Verifier verifier(fbb_.GetBufferPointer(), fbb_.GetSize());
    verified_ = verifier.VerifyBuffer<wire::TensorDesc>(nullptr);
  }
  const wire::TensorDesc* get() const {
    EXPECT_TRUE(verified_);
    return flatbuffers::GetRoot<wire::TensorDesc>(fbb_.GetBufferPointer());
  }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
  bool verified_ = false;
};

class TensorViewTest : public ::testing::Test {
 protected:
  RegionBounds bounds() const { return {arena_.data(), kRingOffset, kRingSize}; }
  Result<TensorView> validate(const RawDesc& raw, Ring expected = Ring::WorkerToHost,
                              const TensorDescLimits& limits = {}) {
    DescBuffer buffer(raw);
    return validate_tensor_desc(buffer.get(), expected, bounds(), limits);
  }
  // The descriptor is refused as invalid_argument with a message naming the tensor and `field`.
  void expect_rejected(const RawDesc& raw, std::string_view field, std::string_view detail,
                       Ring expected = Ring::WorkerToHost) {
    auto result = validate(raw, expected);
    ASSERT_FALSE(result.ok()) << "accepted a bad " << field;
    EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(),
                AllOf(HasSubstr("tensor \""), HasSubstr(std::string(field)),
                      HasSubstr(std::string(detail))));
  }

  std::vector<std::byte> arena_ = std::vector<std::byte>(kRingOffset + kRingSize + 4096);
};

TEST(Dtype, EverySchemaDtypeHasASizeAndAName) {
  struct Expected {
    DType dtype;
    size_t size;
    std::string_view name;
  };
  const Expected all[] = {{DType::F32, 4, "F32"},  {DType::F16, 2, "F16"}, {DType::BF16, 2, "BF16"},
                          {DType::F64, 8, "F64"},  {DType::I8, 1, "I8"},   {DType::U8, 1, "U8"},
                          {DType::I16, 2, "I16"},  {DType::I32, 4, "I32"}, {DType::I64, 8, "I64"},
                          {DType::Bool, 1, "Bool"}};
  ASSERT_EQ(std::size(all), std::size(wire::EnumValuesDType()));
  for (const auto& e : all) {
    EXPECT_EQ(dtype_size(e.dtype), e.size) << e.name;
    EXPECT_EQ(dtype_name(e.dtype), e.name);
    EXPECT_TRUE(is_known_dtype(e.dtype));
  }
  EXPECT_EQ(dtype_size(static_cast<DType>(10)), 0u);
  EXPECT_EQ(dtype_name(static_cast<DType>(200)), "unknown");
  EXPECT_FALSE(is_known_dtype(static_cast<DType>(42)));
}

TEST(Dtype, ByteSizeChecksShapeAndOverflow) {
  const int64_t matrix[] = {3, 5};
  EXPECT_EQ(*tensor_byte_size(DType::BF16, matrix), 30u);
  EXPECT_EQ(*tensor_byte_size(DType::F64, {}), 8u);  // a scalar
  const int64_t huge_but_empty[] = {int64_t{1} << 62, 0, int64_t{1} << 62};
  EXPECT_EQ(*tensor_byte_size(DType::F32, huge_but_empty), 0u);
  const int64_t overflowing[] = {int64_t{1} << 31, int64_t{1} << 31, 4};
  EXPECT_EQ(tensor_byte_size(DType::F32, overflowing).status().code(), ErrorCode::kInvalidArgument);
  const int64_t negative[] = {4, -1};
  EXPECT_THAT(tensor_byte_size(DType::F32, negative).status().message(), HasSubstr("negative"));
  const int64_t rank9[] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_THAT(tensor_byte_size(DType::U8, rank9).status().message(), HasSubstr("rank 9"));
  EXPECT_EQ(tensor_byte_size(static_cast<DType>(77), matrix).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(TensorViewTest, AcceptsAWellFormedDescriptorAndCopiesItOut) {
  RawDesc raw;
  raw.name = "model.layers.0.mlp.gate_proj.weight";
  raw.offset = kRingOffset + 128;
  auto view = validate(raw);
  ASSERT_TRUE(view.ok()) << view.status().to_string();
  EXPECT_EQ(view->name, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(view->dtype, DType::F32);
  EXPECT_EQ(std::vector<int64_t>(view->shape.begin(), view->shape.end()),
            (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(view->data, arena_.data() + kRingOffset + 128);
  EXPECT_EQ(view->length, 24u);
  EXPECT_EQ(view->ring, Ring::WorkerToHost);
  EXPECT_EQ(view->slot(), (RingSlot{kRingOffset + 128, 24}));
}

TEST_F(TensorViewTest, AcceptsATensorThatEndsExactlyAtTheRingsEnd) {
  RawDesc raw;
  raw.offset = kRingOffset + kRingSize - 24;
  EXPECT_TRUE(validate(raw).ok());
}

TEST_F(TensorViewTest, AcceptsAScalarWithoutShapeAndAnEmptyTensor) {
  RawDesc scalar;
  scalar.shape.reset();
  scalar.length = 4;
  auto s = validate(scalar);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->shape.empty());

  RawDesc empty;
  empty.shape = std::vector<int64_t>{0, int64_t{1} << 40};
  empty.length = 0;
  EXPECT_TRUE(validate(empty).ok());
}

TEST_F(TensorViewTest, AcceptsNonAsciiUtf8Names) {
  RawDesc raw;
  raw.name = "bild_\xc3\xa4\xe2\x82\xac\xf0\x9f\x99\x82";  // ä € 🙂
  EXPECT_TRUE(validate(raw).ok()) << validate(raw).status().to_string();
}

TEST_F(TensorViewTest, RejectsAMissingDescriptor) {
  EXPECT_EQ(validate_tensor_desc(nullptr, Ring::WorkerToHost, bounds()).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(TensorViewTest, RejectsBadNames) {
  RawDesc raw;
  raw.name.reset();
  expect_rejected(raw, "name", "missing");
  raw.name = "";
  expect_rejected(raw, "name", "empty");
  raw.name = std::string(257, 'a');
  expect_rejected(raw, "name", "257 bytes");
  raw.name = std::string("a\nb");
  expect_rejected(raw, "name", "control character 0x0a");
  raw.name = std::string("a\0b", 3);
  expect_rejected(raw, "name", "control character 0x00");
  raw.name = "\xff";
  expect_rejected(raw, "name", "not valid UTF-8");
  raw.name = "\xc0\x80";  // overlong NUL
  expect_rejected(raw, "name", "not valid UTF-8");
  raw.name = "\xed\xa0\x80";  // a surrogate
  expect_rejected(raw, "name", "not valid UTF-8");
  raw.name = "ab\xe2\x82";  // truncated
  expect_rejected(raw, "name", "not valid UTF-8");
}

TEST_F(TensorViewTest, ErrorMessagesEscapeAHostileName) {
  RawDesc raw;
  raw.name = std::string("x\r\nFAKE LOG LINE") + std::string(300, 'y');
  auto result = validate(raw);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("\"x\\x0d\\x0aFAKE LOG LINE"));
  EXPECT_EQ(result.status().message().find('\n'), std::string::npos);
  EXPECT_LT(result.status().message().size(), 200u);
}

TEST_F(TensorViewTest, RejectsUnknownAndGpuDevices) {
  RawDesc raw;
  raw.device = 7;
  expect_rejected(raw, "device", "7 is not one of Cpu, Cuda");
  raw.device = static_cast<uint8_t>(Device::Cuda);
  expect_rejected(raw, "device", "must be Cpu");
  raw.device = static_cast<uint8_t>(Device::Cpu);
  raw.with_cuda = true;
  expect_rejected(raw, "cuda", "Cpu tensor");
}

TEST_F(TensorViewTest, RejectsAnUnknownRingAndTheWrongRing) {
  RawDesc raw;
  raw.ring = 5;
  expect_rejected(raw, "ring", "5 is not one of HostToWorker, WorkerToHost");
  raw.ring = static_cast<uint8_t>(Ring::HostToWorker);
  expect_rejected(raw, "ring",
                  "is HostToWorker, but tensors in this message must be in WorkerToHost");
  EXPECT_TRUE(validate(raw, Ring::HostToWorker).ok());
}

TEST_F(TensorViewTest, RejectsAnUnknownDtype) {
  RawDesc raw;
  raw.dtype = 42;
  expect_rejected(raw, "dtype",
                  "42 is not one of F32, F16, BF16, F64, I8, U8, I16, I32, I64, Bool");
}

TEST_F(TensorViewTest, RejectsRankAboveTheLimit) {
  RawDesc raw;
  raw.shape = std::vector<int64_t>(9, 1);
  raw.length = 4;
  expect_rejected(raw, "shape", "rank 9; at most 8");
  raw.shape = std::vector<int64_t>(8, 1);
  EXPECT_TRUE(validate(raw).ok());
  TensorDescLimits strict;
  strict.max_rank = 2;
  raw.shape = std::vector<int64_t>{1, 1, 1};
  auto result = validate(raw, Ring::WorkerToHost, strict);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("rank 3; at most 2"));
}

TEST_F(TensorViewTest, RejectsANegativeDimension) {
  RawDesc raw;
  raw.shape = std::vector<int64_t>{2, -3};
  raw.length = 24;
  expect_rejected(raw, "shape", "dimension 1 of shape [2, -3] is negative");
  raw.shape = std::vector<int64_t>{INT64_MIN};
  expect_rejected(raw, "shape", "negative");
}

TEST_F(TensorViewTest, RejectsAShapeWhoseSizeOverflows) {
  RawDesc raw;
  raw.shape = std::vector<int64_t>{INT64_MAX, INT64_MAX};
  raw.length = 1;  // what the product wraps to must not matter
  expect_rejected(raw, "shape", "larger than 2^64");
  raw.shape = std::vector<int64_t>{int64_t{1} << 62, 4};
  raw.length = 0;  // 2^62 * 4 * 4 bytes wraps to exactly 0
  expect_rejected(raw, "shape", "larger than 2^64");
}

TEST_F(TensorViewTest, RejectsALengthThatDoesNotMatchTheShape) {
  RawDesc raw;
  raw.length = 23;
  expect_rejected(raw, "length", "is 23 bytes, but shape [2, 3] of F32 needs 24 bytes");
  raw.length = 0;
  expect_rejected(raw, "length", "needs 24 bytes");
}

TEST_F(TensorViewTest, RejectsByteRangesOutsideTheRing) {
  RawDesc raw;
  raw.offset = kRingOffset - 8;  // starts before the ring (in the lanes, say)
  expect_rejected(raw, "offset", "not inside ring WorkerToHost (arena bytes [4096, 6144))");
  raw.offset = kRingOffset + kRingSize - 8;  // straddles the end
  expect_rejected(raw, "offset", "not inside ring");
  raw.offset = kRingOffset + kRingSize;  // starts at the end
  expect_rejected(raw, "offset", "not inside ring");
  raw.offset = UINT64_MAX - 4;  // offset + length wraps around to a small number
  expect_rejected(raw, "offset", "not inside ring");
}

TEST_F(TensorViewTest, RejectsALengthThatWrapsOffsetBackIntoTheRing) {
  // U8 [2^62 - 2, 4] is 2^64 - 8 bytes; from kRingOffset + 16, offset + length wraps to
  // kRingOffset + 8, which a naive end check would accept.
  RawDesc raw;
  raw.dtype = static_cast<uint8_t>(DType::U8);
  raw.shape = std::vector<int64_t>{(int64_t{1} << 62) - 2, 4};
  raw.length = UINT64_MAX - 7;
  raw.offset = kRingOffset + 16;
  expect_rejected(raw, "offset", "not inside ring");
}

TEST_F(TensorViewTest, RejectsAnOffsetNotAlignedToTheElementSize) {
  RawDesc raw;
  raw.offset = kRingOffset + 2;
  expect_rejected(raw, "offset", "4098 is not a multiple of the 4-byte F32 element");
  raw.dtype = static_cast<uint8_t>(DType::I16);
  raw.length = 12;
  EXPECT_TRUE(validate(raw).ok());
}

TEST_F(TensorViewTest, WhatBuildTensorDescWritesValidates) {
  auto ring = ShmRing::create(kRingOffset, kRingSize);
  ASSERT_TRUE(ring.ok());
  const int64_t shape[] = {4, 8};
  auto slot = ring->allocate(4 * 8 * 2);
  ASSERT_TRUE(slot.ok());
  flatbuffers::FlatBufferBuilder fbb;
  auto desc = build_tensor_desc(fbb, "logits", DType::BF16, shape, Ring::WorkerToHost, *slot);
  ASSERT_TRUE(desc.ok()) << desc.status().to_string();
  fbb.Finish(*desc);
  flatbuffers::Verifier verifier(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_TRUE(verifier.VerifyBuffer<wire::TensorDesc>(nullptr));
  auto view = validate_tensor_desc(flatbuffers::GetRoot<wire::TensorDesc>(fbb.GetBufferPointer()),
                                   Ring::WorkerToHost, bounds());
  ASSERT_TRUE(view.ok()) << view.status().to_string();
  EXPECT_EQ(view->name, "logits");
  EXPECT_EQ(view->dtype, DType::BF16);
  EXPECT_EQ(view->slot(), *slot);
  EXPECT_EQ(view->data, arena_.data() + slot->offset);
  EXPECT_TRUE(ring->release(view->slot()).ok());
}

TEST(BuildTensorDesc, RefusesWhatTheReaderWouldRefuse) {
  flatbuffers::FlatBufferBuilder fbb;
  const int64_t shape[] = {4, 8};
  const RingSlot slot{4096, 64};
  EXPECT_THAT(
      build_tensor_desc(fbb, "x", DType::F32, shape, Ring::HostToWorker, slot).status().message(),
      HasSubstr("needs 128 bytes"));
  EXPECT_EQ(
      build_tensor_desc(fbb, "", DType::U8, shape, Ring::HostToWorker, {4096, 32}).status().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(build_tensor_desc(fbb, "x", static_cast<DType>(99), shape, Ring::HostToWorker, slot)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(build_tensor_desc(fbb, "x", DType::U8, shape, static_cast<Ring>(3), {4096, 32})
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(build_tensor_desc(fbb, "x", DType::U8, shape, Ring::HostToWorker, {4096, 32}).ok());
}

// Found by the envelope fuzzer: the Verifier accepts a [long] vector at a 4-byte-aligned address.
TEST(ValidateTensorDesc, RefusesAShapeVectorThatIsNotEightByteAligned) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<int64_t> shape{4};
  auto desc = wire::CreateTensorDescDirect(fbb, "x", wire::DType::U8, &shape, wire::Device::Cpu,
                                           Ring::WorkerToHost, kRingOffset, 4);
  fbb.Finish(desc);
  // The same bytes 4 bytes off an 8-byte boundary: every relative offset still checks out.
  std::vector<uint64_t> storage(fbb.GetSize() / 8 + 2);
  auto* shifted = reinterpret_cast<uint8_t*>(storage.data()) + 4;
  std::memcpy(shifted, fbb.GetBufferPointer(), fbb.GetSize());
  const auto* moved = flatbuffers::GetRoot<wire::TensorDesc>(shifted);
  ASSERT_NE(reinterpret_cast<uintptr_t>(moved->shape()->Data()) % 8, 0u);
  std::vector<std::byte> arena(kRingOffset + kRingSize);
  auto view =
      validate_tensor_desc(moved, Ring::WorkerToHost, {arena.data(), kRingOffset, kRingSize});
  ASSERT_FALSE(view.ok());
  EXPECT_NE(view.status().message().find("not 8-byte aligned"), std::string::npos)
      << view.status().message();
}

}  // namespace
}  // namespace pio::ipc
