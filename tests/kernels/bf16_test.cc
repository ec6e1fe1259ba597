#include "pio/kernels/bf16.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace pio::kernels {
namespace {

TEST(Bf16, RoundsLikeLibtorchIncludingTiesInfinitiesAndNan) {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.5f,
                               3.14159f,
                               1e-40f,
                               -1e-38f,
                               65504.0f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::max()};
  // Exact ties between two bf16 values: the low 16 bits are 0x8000.
  for (uint32_t bits : {0x3F808000u, 0x3F818000u, 0xBF808000u, 0x7F7F8000u}) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    values.push_back(f);
  }
  const at::Tensor random = at::randn({4096}, at::TensorOptions().dtype(at::kFloat)) * 100.0;
  for (int64_t i = 0; i < random.numel(); ++i) values.push_back(random[i].item<float>());

  const at::Tensor reference =
      at::from_blob(values.data(), {static_cast<int64_t>(values.size())}, at::kFloat)
          .to(at::kBFloat16);
  const auto* expected = reinterpret_cast<const uint16_t*>(reference.data_ptr());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(float_to_bf16(values[i]), expected[i]) << "value " << values[i];
  }
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(-2.5f)), -2.5f);
}

}  // namespace
}  // namespace pio::kernels
