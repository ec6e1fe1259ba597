#include "pio/kernels/gemm_bf16.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace pio::kernels {
namespace {

const uint16_t* bits(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr());
}

// Compares out[t, r] with the fp32 libtorch product of the upcast operands, within the rounding
// bound of gemv_bf16's test (relative to sum |w x| of each entry).
void expect_close(const at::Tensor& w, const at::Tensor& x, const std::vector<float>& out,
                  int64_t out_stride, int64_t column, const std::string& what) {
  const at::Tensor wf = w.to(at::kFloat), xf = x.to(at::kFloat);
  const at::Tensor reference = at::matmul(xf, wf.t());          // [tokens, rows]
  const at::Tensor scale = at::matmul(xf.abs(), wf.abs().t());  // [tokens, rows]
  const double per_term = 6e-8 * static_cast<double>(w.size(1) + 2);
  for (int64_t t = 0; t < x.size(0); ++t) {
    for (int64_t r = 0; r < w.size(0); ++r) {
      const float got = out[static_cast<size_t>(t * out_stride + column + r)];
      ASSERT_NEAR(got, reference[t][r].item<double>(),
                  per_term * scale[t][r].item<double>() + 1e-30)
          << what << " token " << t << " row " << r;
    }
  }
}

struct Shape {
  int64_t rows, cols, tokens;
};

TEST(GemmBf16, MatchesLibtorchOnOddShapesAndTokenCountsForEveryIsa) {
  at::manual_seed(3);
  const std::vector<Shape> shapes = {{1, 1, 1},      {3, 5, 2},   {4, 32, 3},   {5, 31, 4},
                                     {7, 33, 5},     {17, 65, 1}, {64, 128, 7}, {130, 257, 9},
                                     {33, 1024, 16}, {8, 3072, 2}};
  ThreadPool pool(2);
  for (const GemvIsa isa : available_gemv_isas()) {
    for (const Shape& s : shapes) {
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        const at::Tensor w = at::randn({s.rows, s.cols}).to(at::kBFloat16);
        const at::Tensor x = at::randn({s.tokens, s.cols}).to(at::kBFloat16);
        std::vector<float> out(static_cast<size_t>(s.rows * s.tokens), NAN);
        const GemvMatrix m{bits(w), s.rows, out.data()};
        gemm_bf16({&m, 1}, s.cols, bits(x), s.tokens, s.rows, p, isa);
        expect_close(w, x, out, s.rows, 0,
                     std::string(gemv_isa_name(isa)) + " " + std::to_string(s.rows) + "x" +
                         std::to_string(s.cols) + " x " + std::to_string(s.tokens) +
                         (p ? " pooled" : ""));
      }
    }
  }
}

TEST(GemmBf16, SeveralMatricesWriteSideBySideIntoOneRowPerToken) {
  at::manual_seed(4);
  const int64_t cols = 96, tokens = 5;
  const at::Tensor q = at::randn({12, cols}).to(at::kBFloat16);
  const at::Tensor k = at::randn({6, cols}).to(at::kBFloat16);
  const at::Tensor x = at::randn({tokens, cols}).to(at::kBFloat16);
  const int64_t stride = 12 + 6;
  std::vector<float> out(static_cast<size_t>(tokens * stride), NAN);
  const GemvMatrix ms[] = {{bits(q), 12, out.data()}, {bits(k), 6, out.data() + 12}};
  ThreadPool pool(2);
  gemm_bf16(ms, cols, bits(x), tokens, stride, &pool);
  expect_close(q, x, out, stride, 0, "q");
  expect_close(k, x, out, stride, 12, "k");
}

TEST(GemmBf16, OneTokenGivesWhatTheGemvKernelGives) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({37, 200}).to(at::kBFloat16);
  const at::Tensor x = at::randn({1, 200}).to(at::kBFloat16);
  std::vector<float> by_gemm(37), by_gemv(37);
  const GemvMatrix a{bits(w), 37, by_gemm.data()}, b{bits(w), 37, by_gemv.data()};
  gemm_bf16({&a, 1}, 200, bits(x), 1, 37, nullptr);
  gemv_bf16({&b, 1}, 200, bits(x), nullptr);
  for (size_t r = 0; r < 37; ++r)
    EXPECT_NEAR(by_gemm[r], by_gemv[r], 1e-4f * (1 + std::fabs(by_gemv[r])));
}

}  // namespace
}  // namespace pio::kernels
