#include "pio/plugin_sdk/in_process_plugin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pio::sdk {
namespace {

using ::testing::HasSubstr;

pio_tensor_view f32_view(const char* name, const std::vector<float>& values, const int64_t* shape) {
  return pio_tensor_view{sizeof(pio_tensor_view),      name, PIO_DTYPE_F32, shape, 1, values.data(),
                         values.size() * sizeof(float)};
}

TEST(InProcessPlugin, EchoInferAndExecuteRunWithoutAWorker) {
  auto plugin = InProcessPlugin::load(PIO_TEST_ECHO_PLUGIN);
  ASSERT_TRUE(plugin.ok()) << plugin.status().to_string();
  const std::vector<float> x = {1, 2, 3};
  const int64_t shape[] = {3};
  const pio_tensor_view input = f32_view("x", x, shape);
  auto answer = (*plugin)->infer("", "", std::span(&input, 1));
  ASSERT_TRUE(answer.ok()) << answer.status().to_string();
  ASSERT_EQ(answer->outputs.size(), 1u);
  const auto* y = reinterpret_cast<const float*>(answer->outputs[0].bytes.data());
  EXPECT_EQ(std::vector<float>(y, y + 3), (std::vector<float>{2, 4, 6}));

  auto reversed = (*plugin)->infer("reverse", R"({"text": "abc"})", {});
  ASSERT_TRUE(reversed.ok()) << reversed.status().to_string();
  EXPECT_EQ(nlohmann::json::parse(*reversed->json).at("text"), "cba");
}

TEST(InProcessPlugin, OutputsAreReleasedByTheNextCall) {
  auto plugin = InProcessPlugin::load(PIO_TEST_ECHO_PLUGIN, "{}", /*output_bytes=*/1 << 16);
  ASSERT_TRUE(plugin.ok());
  const std::vector<float> x(4096, 1.0f);  // 16 KiB of a 64 KiB output memory
  const int64_t shape[] = {4096};
  const pio_tensor_view input = f32_view("x", x, shape);
  for (int i = 0; i < 64; ++i) {
    auto answer = (*plugin)->infer("infer", "", std::span(&input, 1));
    ASSERT_TRUE(answer.ok()) << "call " << i << ": " << answer.status().to_string();
  }
}

TEST(InProcessPlugin, GenerateStreamsAndCanBeCancelledByTheCallback) {
  auto plugin = InProcessPlugin::load(PIO_TEST_ECHO_PLUGIN);
  ASSERT_TRUE(plugin.ok());
  std::string text;
  auto done =
      (*plugin)->generate("hello", 100, [&](std::span<const int32_t>, std::string_view piece) {
        text += piece;
        return text.size() < 3;
      });
  ASSERT_TRUE(done.ok()) << done.status().to_string();
  EXPECT_EQ(done->finish_reason, PIO_FINISH_CANCELLED);
  EXPECT_EQ(text, "hel");
}

TEST(InProcessPlugin, AThrowingVerbIsAnInternalError) {
  auto plugin = InProcessPlugin::load(PIO_TEST_THROWING_PLUGIN);
  ASSERT_TRUE(plugin.ok());
  auto answer = (*plugin)->infer("", "", {});
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), ErrorCode::kInternal);
  EXPECT_THAT(answer.status().message(), HasSubstr("boom"));
}

}  // namespace
}  // namespace pio::sdk
