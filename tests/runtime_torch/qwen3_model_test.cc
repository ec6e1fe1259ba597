#include "pio/runtime/qwen3_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "pio/runtime/checkpoint.h"
#include "tiny_models.h"

namespace pio::runtime {
namespace {

using testing::TempDir;
using testing::tiny_config;

std::unique_ptr<Qwen3Model> load_model(const std::filesystem::path& dir,
                                       ModelOptions options = {}) {
  auto model = Qwen3Model::load(dir, options);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<int32_t> token_sequence(int64_t n, int32_t vocab) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 11) % vocab));
  return ids;
}

std::vector<float> full_logits(Qwen3Model& model, const std::vector<int32_t>& ids) {
  auto cache = model.new_cache(static_cast<int64_t>(ids.size()));
  EXPECT_TRUE(cache.ok());
  auto logits = model.forward(ids, 0, *cache, /*all_logits=*/true);
  EXPECT_TRUE(logits.ok()) << logits.status().to_string();
  return logits.ok() ? *logits : std::vector<float>{};
}

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  }
  return worst;
}

double max_abs(std::span<const float> a) {
  double worst = 0.0;
  for (const float x : a) worst = std::max(worst, std::abs(static_cast<double>(x)));
  return worst;
}

// The Qwen3 forward pass written out from models.md 2.2-2.3 in double precision, one token at a
// time, with no libtorch: an independent check of the layer semantics (norm order, QK-norm before
// RoPE, half-split rotation, kv head j / group, tied head).
class ReferenceQwen3 {
 public:
  ReferenceQwen3(const Checkpoint& checkpoint, const Qwen3Config& config) : c_(config) {
    for (const auto& [name, view] : checkpoint.tensors()) {
      const auto* f = reinterpret_cast<const float*>(view->data);
      w_[name].assign(f, f + view->numel());
    }
  }

  std::vector<std::vector<double>> logits(const std::vector<int32_t>& ids) const {
    const int64_t H = c_.hidden_size, nh = c_.num_attention_heads, nkv = c_.num_key_value_heads,
                  hd = c_.head_dim, I = c_.intermediate_size, V = c_.vocab_size;
    const auto T = static_cast<int64_t>(ids.size());
    std::vector<std::vector<double>> out;
    // keys[layer][t] / values[layer][t]: nkv * hd
    std::vector<std::vector<std::vector<double>>> keys(c_.num_hidden_layers),
        values(c_.num_hidden_layers);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> h(H);
      for (int64_t i = 0; i < H; ++i) h[i] = at("model.embed_tokens.weight")[ids[t] * H + i];
      for (int64_t l = 0; l < c_.num_hidden_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        const auto x = rms(h, at(p + "input_layernorm.weight"), 0, H);
        auto q = matvec(at(p + "self_attn.q_proj.weight"), x, nh * hd);
        auto k = matvec(at(p + "self_attn.k_proj.weight"), x, nkv * hd);
        const auto v = matvec(at(p + "self_attn.v_proj.weight"), x, nkv * hd);
        for (int64_t j = 0; j < nh; ++j)
          norm_and_rotate(q, j, at(p + "self_attn.q_norm.weight"), t);
        for (int64_t j = 0; j < nkv; ++j)
          norm_and_rotate(k, j, at(p + "self_attn.k_norm.weight"), t);
        keys[l].push_back(k);
        values[l].push_back(v);
        std::vector<double> attended(nh * hd, 0.0);
        for (int64_t j = 0; j < nh; ++j) {
          const int64_t g = j / (nh / nkv);
          std::vector<double> scores(t + 1);
          double top = -1e300;
          for (int64_t u = 0; u <= t; ++u) {
            double s = 0;
            for (int64_t d = 0; d < hd; ++d) s += q[j * hd + d] * keys[l][u][g * hd + d];
            scores[u] = s / std::sqrt(static_cast<double>(hd));
            top = std::max(top, scores[u]);
          }
          double sum = 0;
          for (double& s : scores) sum += (s = std::exp(s - top));
          for (int64_t u = 0; u <= t; ++u) {
            for (int64_t d = 0; d < hd; ++d) {
              attended[j * hd + d] += scores[u] / sum * values[l][u][g * hd + d];
            }
          }
        }
        const auto o = matvec(at(p + "self_attn.o_proj.weight"), attended, H);
        for (int64_t i = 0; i < H; ++i) h[i] += o[i];
        const auto y = rms(h, at(p + "post_attention_layernorm.weight"), 0, H);
        const auto gate = matvec(at(p + "mlp.gate_proj.weight"), y, I);
        const auto up = matvec(at(p + "mlp.up_proj.weight"), y, I);
        std::vector<double> act(I);
        for (int64_t i = 0; i < I; ++i) act[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
        const auto down = matvec(at(p + "mlp.down_proj.weight"), act, H);
        for (int64_t i = 0; i < H; ++i) h[i] += down[i];
      }
      const auto final_h = rms(h, at("model.norm.weight"), 0, H);
      out.push_back(matvec(
          at(c_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), final_h, V));
    }
    return out;
  }

 private:
  const std::vector<double>& at(const std::string& name) const { return w_.at(name); }

  std::vector<double> rms(const std::vector<double>& x, const std::vector<double>& weight,
                          int64_t offset, int64_t n) const {
    double ms = 0;
    for (int64_t i = 0; i < n; ++i) ms += x[offset + i] * x[offset + i];
    const double scale = 1.0 / std::sqrt(ms / static_cast<double>(n) + c_.rms_norm_eps);
    std::vector<double> out(n);
    for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * x[offset + i] * scale;
    return out;
  }

  std::vector<double> matvec(const std::vector<double>& w, const std::vector<double>& x,
                             int64_t rows) const {
    const auto cols = static_cast<int64_t>(x.size());
    std::vector<double> out(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) out[r] += w[r * cols + c] * x[c];
    }
    return out;
  }

  // Head `j` of `x`: RMS-normed with `weight`, then rotated for position `pos`.
  void norm_and_rotate(std::vector<double>& x, int64_t j, const std::vector<double>& weight,
                       int64_t pos) const {
    const int64_t hd = c_.head_dim, half = hd / 2;
    const auto normed = rms(x, weight, j * hd, hd);
    for (int64_t i = 0; i < half; ++i) {
      const double angle =
          static_cast<double>(pos) / std::pow(c_.rope_theta, 2.0 * static_cast<double>(i) / hd);
      const double a = normed[i], b = normed[i + half];
      x[j * hd + i] = a * std::cos(angle) - b * std::sin(angle);
      x[j * hd + i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }

  Qwen3Config c_;
  std::map<std::string, std::vector<double>> w_;
};

TEST(Qwen3Model, FullForwardMatchesAnIndependentDoubleReferenceTiedAndUntied) {
  for (const bool tied : {true, false}) {
    TempDir dir;
    const Qwen3Config config = tiny_config(DType::kF32, tied);
    testing::write_random_norm_checkpoint(dir.path(), config, 7);
    auto model = load_model(dir.path());
    ASSERT_NE(model, nullptr);
    const std::vector<int32_t> ids = token_sequence(12, 128);
    const std::vector<float> got = full_logits(*model, ids);
    auto checkpoint = Checkpoint::open(dir.path());
    ASSERT_TRUE(checkpoint.ok());
    const auto want = ReferenceQwen3(*checkpoint, config).logits(ids);
    ASSERT_EQ(got.size(), ids.size() * 128);
    double worst = 0, scale = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      for (size_t v = 0; v < 128; ++v) {
        worst = std::max(worst, std::abs(got[t * 128 + v] - want[t][v]));
        scale = std::max(scale, std::abs(want[t][v]));
      }
    }
    EXPECT_GT(scale, 0.5) << "logits too small to tell anything";
    EXPECT_LT(worst, 1e-5 * scale * 10) << "tied " << tied << " scale " << scale;
  }
}

TEST(Qwen3Model, DecodeWithTheKvCacheGivesTheFullForwardLogitsFor64StepsInFp32) {
  TempDir dir;
  testing::write_mkmodel_checkpoint(dir.path(), tiny_config(DType::kF32), 3);
  auto model = load_model(dir.path());
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> ids = token_sequence(65, 128);
  const std::vector<float> full = full_logits(*model, ids);
  ASSERT_EQ(full.size(), 65u * 128);

  auto cache = model->new_cache(65);
  ASSERT_TRUE(cache.ok());
  for (int64_t step = 0; step < 65; ++step) {
    const auto logits = model->forward({&ids[step], 1}, step, *cache);
    ASSERT_TRUE(logits.ok()) << logits.status().to_string();
    EXPECT_EQ(cache->length(), step + 1);
    const std::span<const float> row(full.data() + step * 128, 128);
    EXPECT_LE(max_abs_diff(*logits, row), 1e-5) << "step " << step;
    EXPECT_GT(max_abs(*logits), 1e-3);
  }
}

TEST(Qwen3Model, PrefillOfAChunkThenDecodeMatchesTheFullForward) {
  TempDir dir;
  testing::write_mkmodel_checkpoint(dir.path(), tiny_config(DType::kF32), 4);
  auto model = load_model(dir.path());
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> ids = token_sequence(20, 128);
  const std::vector<float> full = full_logits(*model, ids);
  auto cache = model->new_cache(20);
  ASSERT_TRUE(cache.ok());
  const auto prefill = model->forward({ids.data(), 12}, 0, *cache);
  ASSERT_TRUE(prefill.ok());
  EXPECT_LE(max_abs_diff(*prefill, {full.data() + 11 * 128, 128}), 1e-5);
  for (int64_t step = 12; step < 20; ++step) {
    const auto logits = model->forward({&ids[step], 1}, step, *cache);
    ASSERT_TRUE(logits.ok());
    EXPECT_LE(max_abs_diff(*logits, {full.data() + step * 128, 128}), 1e-5) << "step " << step;
  }
}

TEST(Qwen3Model, RunningFromAnEarlierPositionReplacesTheLaterTokens) {
  TempDir dir;
  testing::write_mkmodel_checkpoint(dir.path(), tiny_config(DType::kF32), 5);
  auto model = load_model(dir.path());
  ASSERT_NE(model, nullptr);
  std::vector<int32_t> ids = token_sequence(10, 128);
  auto cache = model->new_cache(10);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE(model->forward(ids, 0, *cache).ok());
  // Replace the last four tokens.
  const std::vector<int32_t> tail = {3, 4, 5, 6};
  const auto rerun = model->forward(tail, 6, *cache);
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(cache->length(), 10);
  std::copy(tail.begin(), tail.end(), ids.begin() + 6);
  const std::vector<float> fresh = full_logits(*model, ids);
  EXPECT_LE(max_abs_diff(*rerun, {fresh.data() + 9 * 128, 128}), 1e-5);
  cache->truncate(3);
  EXPECT_EQ(cache->length(), 3);
}

TEST(Qwen3Model, Bf16DecodeThroughTheGemvKernelAgreesWithLibtorchAndWithFp32) {
  TempDir f32_dir, bf16_dir;
  // The same seed: the bf16 weights are the fp32 ones rounded.
  testing::write_mkmodel_checkpoint(f32_dir.path(), tiny_config(DType::kF32), 6);
  testing::write_mkmodel_checkpoint(bf16_dir.path(), tiny_config(DType::kBF16), 6);
  auto f32 = load_model(f32_dir.path());
  auto kernel = load_model(bf16_dir.path());
  auto libtorch = load_model(bf16_dir.path(), ModelOptions{.threads = 2, .gemv_kernel = false});
  ASSERT_TRUE(f32 && kernel && libtorch);
  EXPECT_EQ(kernel->dtype(), DType::kBF16);
  const std::vector<int32_t> ids = token_sequence(24, 128);
  auto run = [&](Qwen3Model& model) {
    auto cache = model.new_cache(24);
    std::vector<float> all;
    for (int64_t step = 0; step < 24; ++step) {
      const auto logits = model.forward({&ids[step], 1}, step, *cache);
      EXPECT_TRUE(logits.ok());
      if (logits.ok()) all.insert(all.end(), logits->begin(), logits->end());
    }
    return all;
  };
  const auto want = run(*f32);
  const auto with_kernel = run(*kernel);
  const auto with_libtorch = run(*libtorch);
  const double scale = max_abs(want);
  // bf16 keeps 8 bits of mantissa: activations rounded at every layer leave ~1% of the scale.
  EXPECT_LT(max_abs_diff(with_kernel, want), 0.03 * scale) << "scale " << scale;
  EXPECT_LT(max_abs_diff(with_libtorch, want), 0.03 * scale);
  EXPECT_LT(max_abs_diff(with_kernel, with_libtorch), 0.03 * scale);
  EXPECT_NE(with_kernel, with_libtorch) << "the two paths should not be the same code";
}

TEST(Qwen3Model, RefusesBadIdsPositionsAndForeignCaches) {
  TempDir dir;
  testing::write_mkmodel_checkpoint(dir.path(), tiny_config(DType::kF32), 8);
  auto model = load_model(dir.path());
  auto other = load_model(dir.path());
  ASSERT_TRUE(model && other);
  auto cache = model->new_cache(4);
  ASSERT_TRUE(cache.ok());
  const std::vector<int32_t> bad_id = {5, 128};
  EXPECT_EQ(model->forward(bad_id, 0, *cache).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(model->forward(std::vector<int32_t>{5}, 1, *cache).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(model->forward(std::vector<int32_t>{1, 2, 3, 4, 5}, 0, *cache).status().code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(other->forward(std::vector<int32_t>{5}, 0, *cache).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(model->new_cache(513).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cache->length(), 0);
}

TEST(Qwen3Model, LoadNamesTheTensorsACheckpointLacks) {
  TempDir dir;
  testing::write_mkmodel_checkpoint(dir.path(), tiny_config(DType::kF32), 9);
  Qwen3Config three_layers = tiny_config(DType::kF32);
  three_layers.num_hidden_layers = 3;
  std::ofstream(dir.path() / "config.json") << qwen3_config_to_json(three_layers);
  const auto model = Qwen3Model::load(dir.path());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("model.layers.2.self_attn.q_proj.weight"),
            std::string::npos)
      << model.status().message();
}

TEST(Qwen3Model, CountsTheWeightBytesADecodedTokenReads) {
  TempDir dir;
  const Qwen3Config c = tiny_config(DType::kBF16);
  testing::write_mkmodel_checkpoint(dir.path(), c, 10);
  auto model = load_model(dir.path());
  ASSERT_NE(model, nullptr);
  const int64_t per_layer =
      2 * c.hidden_size + 2 * c.head_dim +
      c.hidden_size * c.head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) +
      3 * c.hidden_size * c.intermediate_size;
  const int64_t params = c.num_hidden_layers * per_layer + c.hidden_size +
                         c.vocab_size * c.hidden_size + c.hidden_size;
  EXPECT_EQ(model->weight_bytes_per_token(), static_cast<uint64_t>(params) * 2);
}

}  // namespace
}  // namespace pio::runtime
