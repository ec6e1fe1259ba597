#include "pio/kernels/gemv_bf16.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "pio/kernels/bf16.h"

namespace pio::kernels {
namespace {

struct Shape {
  int64_t rows;
  int64_t cols;
};

// Shapes around the vector widths (16 fp32, 32 bf16) and the 4-row blocks, plus model-like ones.
const std::vector<Shape> kShapes = {{1, 1},     {3, 5},      {4, 16},     {5, 31},   {7, 32},
                                    {9, 33},    {17, 47},    {31, 63},    {33, 65},  {67, 1000},
                                    {130, 257}, {256, 1024}, {1024, 129}, {61, 3072}};

at::Tensor bf16_matrix(int64_t rows, int64_t cols) {
  return at::randn({rows, cols}, at::TensorOptions().dtype(at::kFloat)).to(at::kBFloat16);
}

const uint16_t* bits(const at::Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.data_ptr());
}

// Compares `got` with the fp32 libtorch product of the upcast weights. The bound is relative to
// sum |w x| of each row: both sides accumulate fp32 roundings (about 6e-8 each) in different
// orders, which grows at most like the number of terms.
void expect_close_to_reference(const at::Tensor& w, const at::Tensor& x_f32,
                               const std::vector<float>& got, const std::string& what) {
  const at::Tensor wf = w.to(at::kFloat);
  const at::Tensor reference = at::matmul(wf, x_f32);
  const at::Tensor scale = at::matmul(wf.abs(), x_f32.abs());
  const double per_term = 6e-8 * static_cast<double>(w.size(1) + 2);
  for (int64_t r = 0; r < w.size(0); ++r) {
    const double want = reference[r].item<double>();
    const double tolerance = per_term * scale[r].item<double>() + 1e-30;
    ASSERT_NEAR(got[static_cast<size_t>(r)], want, tolerance) << what << " row " << r;
  }
}

TEST(GemvBf16, MatchesLibtorchWithBf16InputOnOddShapesForEveryIsa) {
  at::manual_seed(1);
  for (const GemvIsa isa : available_gemv_isas()) {
    for (const Shape& s : kShapes) {
      const at::Tensor w = bf16_matrix(s.rows, s.cols);
      const at::Tensor x = at::randn({s.cols}).to(at::kBFloat16);
      std::vector<float> out(static_cast<size_t>(s.rows), NAN);
      const GemvMatrix m{bits(w), s.rows, out.data()};
      gemv_bf16({&m, 1}, s.cols, bits(x), nullptr, isa);
      expect_close_to_reference(w, x.to(at::kFloat), out,
                                std::string(gemv_isa_name(isa)) + " " + std::to_string(s.rows) +
                                    "x" + std::to_string(s.cols));
    }
  }
}

TEST(GemvBf16, MatchesLibtorchWithFp32InputOnOddShapesForEveryIsa) {
  at::manual_seed(2);
  for (const GemvIsa isa : available_gemv_isas()) {
    for (const Shape& s : kShapes) {
      const at::Tensor w = bf16_matrix(s.rows, s.cols);
      const at::Tensor x = at::randn({s.cols});
      std::vector<float> out(static_cast<size_t>(s.rows), NAN);
      const GemvMatrix m{bits(w), s.rows, out.data()};
      gemv_bf16({&m, 1}, s.cols, x.data_ptr<float>(), nullptr, isa);
      expect_close_to_reference(w, x, out,
                                std::string(gemv_isa_name(isa)) + " " + std::to_string(s.rows) +
                                    "x" + std::to_string(s.cols));
    }
  }
}

TEST(GemvBf16, SplitsSeveralMatricesOverThreadsWithTheSameResultsAsOneThread) {
  at::manual_seed(3);
  const int64_t cols = 100;
  const std::vector<int64_t> rows = {5, 0, 70, 1, 33};
  std::vector<at::Tensor> weights;
  for (const int64_t r : rows) weights.push_back(bf16_matrix(r, cols));
  const at::Tensor x = at::randn({cols}).to(at::kBFloat16);
  ThreadPool pool(2);
  for (const GemvIsa isa : available_gemv_isas()) {
    std::vector<std::vector<float>> single(rows.size()), threaded(rows.size());
    std::vector<GemvMatrix> single_jobs, threaded_jobs;
    for (size_t i = 0; i < rows.size(); ++i) {
      single[i].assign(static_cast<size_t>(rows[i]), NAN);
      threaded[i].assign(static_cast<size_t>(rows[i]), NAN);
      single_jobs.push_back({bits(weights[i]), rows[i], single[i].data()});
      threaded_jobs.push_back({bits(weights[i]), rows[i], threaded[i].data()});
    }
    for (const GemvMatrix& job : single_jobs) gemv_bf16({&job, 1}, cols, bits(x), nullptr, isa);
    gemv_bf16(threaded_jobs, cols, bits(x), &pool, isa);
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(threaded[i], single[i]) << gemv_isa_name(isa) << " matrix " << i;
      expect_close_to_reference(weights[i], x.to(at::kFloat), threaded[i],
                                std::string(gemv_isa_name(isa)) + " matrix " + std::to_string(i));
    }
  }
}

TEST(GemvBf16, ListsThePortableIsaFirstAndPicksTheLastAsBest) {
  const std::vector<GemvIsa> isas = available_gemv_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), GemvIsa::kPortable);
  EXPECT_EQ(best_gemv_isa(), isas.back());
}

}  // namespace
}  // namespace pio::kernels
