#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "checkpoint_test_files.h"
#include "pio/runtime/safetensors_file.h"
#include "pio/runtime/safetensors_header.h"
#include "pio/runtime/safetensors_writer.h"

namespace pio::runtime {
namespace {

using ::testing::AllOf;
using testing::as_bytes;
using ::testing::HasSubstr;
using testing::safetensors_bytes;
using testing::TempDir;

// Parses hand-made file bytes; the label "t.safetensors" must appear in every error.
Result<SafetensorsHeader> parse(const std::string& file_bytes) {
  const std::vector<std::byte> bytes = as_bytes(file_bytes);
  return parse_safetensors_header(bytes, "t.safetensors");
}

std::string parse_error(const std::string& file_bytes) {
  Result<SafetensorsHeader> header = parse(file_bytes);
  EXPECT_FALSE(header.ok());
  if (header.ok()) return "";
  EXPECT_EQ(header.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(header.status().message(), HasSubstr("\"t.safetensors\""));
  return header.status().message();
}

// Fills each tensor with bytes derived from its name and position, so a test can tell them apart.
void fill_pattern(const TensorSpec& spec, std::span<std::byte> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::byte>((i * 7 + spec.name.size() * 13) & 0xff);
  }
}

TEST(SafetensorsWriter, WrittenFileRoundTripsThroughTheLoaderWithoutCopying) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {
      {"a.bf16", DType::kBF16, {3, 5}},
      {"b.f32", DType::kF32, {7}},
      {"c.f16", DType::kF16, {1, 1, 3}},
      {"d.empty", DType::kF32, {0, 4}},
  };
  Result<uint64_t> written =
      write_safetensors(dir / "m.safetensors", specs, {{"format", "pt"}}, fill_pattern);
  ASSERT_TRUE(written.ok()) << written.status().to_string();
  EXPECT_EQ(*written, std::filesystem::file_size(dir / "m.safetensors"));

  Result<SafetensorsFile> file = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  ASSERT_EQ(file->tensors().size(), specs.size());
  const std::string raw = testing::read_file(dir / "m.safetensors");
  for (const TensorSpec& spec : specs) {
    const TensorView* view = file->find(spec.name);
    ASSERT_NE(view, nullptr) << spec.name;
    EXPECT_EQ(view->dtype, spec.dtype);
    EXPECT_EQ(view->shape, spec.shape);
    EXPECT_EQ(view->byte_length, spec.byte_length());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % dtype_size(spec.dtype), 0u) << spec.name;
    std::vector<std::byte> want(spec.byte_length());
    fill_pattern(spec, want);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), view->data)) << spec.name;
  }
  EXPECT_EQ(file->find("missing"), nullptr);
}

TEST(SafetensorsWriter, RefusesADuplicateTensorName) {
  TempDir dir;
  Result<uint64_t> written = write_safetensors(
      dir / "m.safetensors", {{"x", DType::kF32, {1}}, {"x", DType::kF32, {2}}}, {}, fill_pattern);
  ASSERT_FALSE(written.ok());
  EXPECT_THAT(written.status().message(), HasSubstr("\"x\""));
}

TEST(SafetensorsHeader, AcceptsAHandWrittenFileInTheReferenceLayout) {
  Result<SafetensorsHeader> header = parse(safetensors_bytes(
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]}})",
      20));
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].name, "w");
  EXPECT_EQ(header->tensors[1].name, "b");
  EXPECT_EQ(header->tensors[1].file_offset, header->data_offset + 16);
  EXPECT_EQ(header->metadata.at("format"), "pt");
}

TEST(SafetensorsHeader, FileShorterThanTheLengthFieldIsRefused) {
  EXPECT_THAT(parse_error("\x10\x00\x00"), HasSubstr("shorter than the 8-byte header length"));
}

TEST(SafetensorsHeader, HeaderLengthPastTheEndOfTheFileIsRefused) {
  const std::string bytes = safetensors_bytes(R"({})", 0, /*header_length=*/4096);
  EXPECT_THAT(parse_error(bytes), HasSubstr("header length 4096 runs past the end of the file"));
}

TEST(SafetensorsHeader, HeaderLengthOverTheLimitIsRefused) {
  const std::string bytes = safetensors_bytes(R"({})", 0, /*header_length=*/int64_t{1} << 40);
  EXPECT_THAT(parse_error(bytes), HasSubstr("over the 104857600-byte limit"));
}

TEST(SafetensorsHeader, TruncatedDataSectionNamesTheTensorThatRunsPastIt) {
  const std::string bytes =
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                        20);
  EXPECT_THAT(parse_error(bytes),
              AllOf(HasSubstr("tensor \"b\""), HasSubstr("past the end of the data section"),
                    HasSubstr("truncated")));
}

TEST(SafetensorsHeader, OffsetsPastTheEndOfTheFileAreRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[1000000,1000004]}})", 8);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"a\""), HasSubstr("[1000000, 1000004]"),
                                        HasSubstr("past the end")));
}

TEST(SafetensorsHeader, OverlappingTensorsAreRefusedNamingBoth) {
  const std::string bytes =
      safetensors_bytes(R"({"first":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("second":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                        24);
  EXPECT_THAT(parse_error(bytes),
              AllOf(HasSubstr("\"first\""), HasSubstr("\"second\""), HasSubstr("overlaps")));
}

TEST(SafetensorsHeader, TwoTensorsSharingTheSameBytesAreRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                        R"("b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                        16);
  EXPECT_THAT(parse_error(bytes), HasSubstr("overlaps"));
}

TEST(SafetensorsHeader, OffsetsEndingBeforeTheyBeginAreRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"a\""), HasSubstr("[8, 4] end before")));
}

TEST(SafetensorsHeader, ByteLengthNotMatchingShapeTimesDtypeIsRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[3,3],"data_offsets":[0,16]}})", 16);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"w\""), HasSubstr("hold 16 bytes"),
                                        HasSubstr("shape [3, 3] of BF16 needs 18")));
}

TEST(SafetensorsHeader, ShapeWhoseByteCountOverflowsIsRefused) {
  const std::string bytes = safetensors_bytes(
      R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})", 16);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"w\""), HasSubstr("64 bits")));
  const std::string times_dtype = safetensors_bytes(
      R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}})", 16);
  EXPECT_THAT(parse_error(times_dtype), HasSubstr("64 bits"));
}

TEST(SafetensorsHeader, DimensionAboveInt64IsRefused) {
  const std::string bytes = safetensors_bytes(
      R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,16]}})", 16);
  EXPECT_THAT(parse_error(bytes), HasSubstr("something other than a size"));
}

TEST(SafetensorsHeader, NegativeDimensionIsRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", 0);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"w\""), HasSubstr("[-1]")));
}

TEST(SafetensorsHeader, MalformedJsonIsRefused) {
  EXPECT_THAT(parse_error(safetensors_bytes(R"({"w":{"dtype":"U8",)", 0)),
              HasSubstr("header JSON is invalid"));
  EXPECT_THAT(parse_error(safetensors_bytes("[1,2,3]", 0)), HasSubstr("not an object"));
  EXPECT_THAT(parse_error(safetensors_bytes("\xff\xfe", 0)), HasSubstr("header JSON is invalid"));
}

TEST(SafetensorsHeader, DuplicateTensorNameIsRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                        R"("w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                        8);
  EXPECT_THAT(parse_error(bytes), HasSubstr("key \"w\" appears twice"));
}

TEST(SafetensorsHeader, NestingDeeperThanAHeaderNeedsIsRefused) {
  const std::string bytes =
      safetensors_bytes(R"({"w":{"dtype":"U8","shape":[[[[[1]]]]],"data_offsets":[0,1]}})", 1);
  EXPECT_THAT(parse_error(bytes), HasSubstr("nested deeper"));
}

TEST(SafetensorsHeader, UnknownDtypeIsRefusedNamingTheTensor) {
  const std::string bytes =
      safetensors_bytes(R"({"w":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,4]}})", 4);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("tensor \"w\""), HasSubstr("\"Q4_K\"")));
}

TEST(SafetensorsHeader, MissingOrUnknownTensorFieldIsRefused) {
  EXPECT_THAT(parse_error(safetensors_bytes(R"({"w":{"dtype":"U8","shape":[4]}})", 4)),
              HasSubstr("\"data_offsets\" is missing"));
  EXPECT_THAT(parse_error(safetensors_bytes(
                  R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":1}})", 4)),
              HasSubstr("unknown field \"x\""));
  EXPECT_THAT(parse_error(safetensors_bytes(
                  R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}})", 4)),
              HasSubstr("is not [begin, end]"));
}

TEST(SafetensorsHeader, MetadataMustMapStringsToStrings) {
  EXPECT_THAT(parse_error(safetensors_bytes(R"({"__metadata__":{"n":3}})", 0)),
              HasSubstr("\"__metadata__\" field \"n\" is not a string"));
}

TEST(SafetensorsHeader, BytesBetweenTensorsOrAfterTheLastAreRefused) {
  EXPECT_THAT(
      parse_error(safetensors_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8)),
      HasSubstr("data bytes [0, 4) before tensor \"a\" belong to no tensor"));
  EXPECT_THAT(
      parse_error(safetensors_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 8)),
      HasSubstr("4 bytes after the last tensor"));
}

TEST(SafetensorsHeader, TensorNotAlignedToItsElementSizeIsRefused) {
  // Header of 61 bytes, unpadded: the data starts at file offset 69, odd for an F32.
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}       )";
  ASSERT_EQ((header.size() + 8) % 4, 1u);
  EXPECT_THAT(parse_error(safetensors_bytes(header, 4, -1, /*pad=*/false)),
              AllOf(HasSubstr("tensor \"a\""), HasSubstr("not a multiple of the 4-byte F32")));
}

TEST(SafetensorsHeader, ZeroSizedTensorsAndAnEmptyHeaderAreAccepted) {
  Result<SafetensorsHeader> empty = parse(safetensors_bytes("{}", 0));
  ASSERT_TRUE(empty.ok()) << empty.status().to_string();
  EXPECT_TRUE(empty->tensors.empty());
  Result<SafetensorsHeader> zero =
      parse(safetensors_bytes(R"({"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                              4));
  ASSERT_TRUE(zero.ok()) << zero.status().to_string();
  EXPECT_EQ(zero->tensors.size(), 2u);
}

TEST(SafetensorsFile, TruncatedFileOnDiskIsRefusedNamingThePathAndTheTensor) {
  TempDir dir;
  const std::filesystem::path path = dir / "m.safetensors";
  ASSERT_TRUE(write_safetensors(path, {{"w", DType::kBF16, {64, 64}}}, {}, fill_pattern).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  Result<SafetensorsFile> file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path.string()), HasSubstr("tensor \"w\""), HasSubstr("truncated")));
}

TEST(SafetensorsFile, TinyOrMissingOrNonRegularFilesAreRefused) {
  TempDir dir;
  testing::write_file(dir / "tiny.safetensors", "abc");
  Result<SafetensorsFile> tiny = SafetensorsFile::open(dir / "tiny.safetensors");
  ASSERT_FALSE(tiny.ok());
  EXPECT_THAT(tiny.status().message(), HasSubstr("shorter than the 8-byte header length"));
  Result<SafetensorsFile> missing = SafetensorsFile::open(dir / "none.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("none.safetensors"));
  Result<SafetensorsFile> directory = SafetensorsFile::open(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.status().message(), HasSubstr("not a regular file"));
}

TEST(SafetensorsFile, ViewsStayValidAfterTheFileObjectMoves) {
  TempDir dir;
  ASSERT_TRUE(
      write_safetensors(dir / "m.safetensors", {{"w", DType::kF32, {8}}}, {}, fill_pattern).ok());
  Result<SafetensorsFile> opened = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_TRUE(opened.ok());
  const std::byte* data = opened->find("w")->data;
  SafetensorsFile moved = std::move(opened).value();
  SafetensorsFile assigned = std::move(moved);
  EXPECT_EQ(assigned.find("w")->data, data);
  EXPECT_EQ(assigned.find("w")->numel(), 8);
}

}  // namespace
}  // namespace pio::runtime
