#include "pio/runtime/qwen3_model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <omp.h>

#include <exception>
#include <string>
#include <utility>

#include "internal/kv_cache_storage.h"
#include "internal/torch_layers.h"
#include "pio/kernels/gemm_bf16.h"
#include "pio/kernels/gemv_bf16.h"
#include "pio/kernels/thread_pool.h"
#include "pio/runtime/checkpoint_expectation.h"

namespace pio::runtime {
namespace {

struct LayerWeights {
  at::Tensor input_norm, q, k, v, o, q_norm, k_norm, post_norm, gate, up, down;
};

at::ScalarType scalar_type(DType dtype) {
  return dtype == DType::kBF16 ? at::kBFloat16 : at::kFloat;
}

// A tensor over the mapped bytes. The mapping is read-only: nothing may write through it (every
// use below reads; libtorch ops make new tensors).
at::Tensor in_place(const TensorView& view) {
  return at::from_blob(const_cast<std::byte*>(view.data), view.shape,
                       at::TensorOptions().dtype(scalar_type(view.dtype)));
}

}  // namespace

struct Qwen3Model::Impl {
  Qwen3Config config;
  DType dtype = DType::kBF16;
  Checkpoint checkpoint;  // owns the mappings the weights point into
  ModelOptions options;
  at::Tensor embed;
  std::vector<LayerWeights> layers;
  at::Tensor final_norm;
  at::Tensor head;  // the embedding table when tied
  at::Tensor inverse_frequencies;
  kernels::ThreadPool pool;

  Impl(Qwen3Config c, DType d, Checkpoint ckpt, const ModelOptions& o)
      : config(std::move(c)), dtype(d), checkpoint(std::move(ckpt)), options(o), pool(o.threads) {}

  bool use_gemv() const { return dtype == DType::kBF16 && options.gemv_kernel; }

  // x [T, in] times each weight [rows, in] transposed, all matrices in one kernel call. A bf16
  // model goes through the project's kernels: one token through the GEMV kernel, several through
  // the GEMM kernel. Both are compiled ahead of time, where libtorch's bf16 matmul is oneDNN's
  // run-time generated code, which a low-trust worker cannot make executable. fp32 (and bf16
  // with the kernels switched off, to compare) use libtorch's matmul (BLAS / oneDNN).
  std::vector<at::Tensor> linear(const at::Tensor& x, std::initializer_list<const at::Tensor*> ws,
                                 bool fp32_out = false) {
    std::vector<at::Tensor> outs;
    if (use_gemv()) {
      const at::Tensor xc = x.contiguous();
      const int64_t tokens = x.size(0);
      int64_t total = 0;
      for (const at::Tensor* w : ws) total += w->size(0);
      const at::Tensor out = at::empty({tokens, total}, at::TensorOptions().dtype(at::kFloat));
      std::vector<kernels::GemvMatrix> matrices;
      int64_t offset = 0;
      for (const at::Tensor* w : ws) {
        matrices.push_back({static_cast<const uint16_t*>(w->data_ptr()), w->size(0),
                            out.data_ptr<float>() + offset});
        offset += w->size(0);
      }
      const auto* xb = static_cast<const uint16_t*>(xc.data_ptr());
      if (tokens == 1) {
        kernels::gemv_bf16(matrices, x.size(1), xb, &pool);
      } else {
        kernels::gemm_bf16(matrices, x.size(1), xb, tokens, total, &pool);
      }
      const at::Tensor cast = fp32_out ? out : out.to(x.scalar_type());
      offset = 0;
      for (const at::Tensor* w : ws) {
        outs.push_back(cast.narrow(1, offset, w->size(0)));
        offset += w->size(0);
      }
      return outs;
    }
    for (const at::Tensor* w : ws) {
      at::Tensor y = at::matmul(x, w->t());
      outs.push_back(fp32_out ? y.to(at::kFloat) : y);
    }
    return outs;
  }

  at::Tensor forward(std::span<const int32_t> ids, int64_t start, KvCacheStorage& cache,
                     bool all_logits) {
    const c10::InferenceMode inference;
    const auto tokens = static_cast<int64_t>(ids.size());
    // With the bf16 kernels doing the big products, libtorch's ops are small, yet some (bmm) open
    // an OpenMP region per call, whose waking and spinning threads then fight the kernels' pool
    // for the cores (decode ran 5x slower): one OpenMP thread then. fp32 models (whose products
    // are OpenBLAS's, on OpenMP) get them all.
    omp_set_num_threads(use_gemv() ? 1 : options.threads);
    const double eps = config.rms_norm_eps;
    const int64_t heads = config.num_attention_heads;
    const int64_t kv_heads = config.num_key_value_heads;
    const int64_t head_dim = config.head_dim;
    const at::Tensor id_tensor =
        at::from_blob(const_cast<int32_t*>(ids.data()), {tokens}, at::kInt).to(at::kLong);
    const at::Tensor positions =
        at::arange(start, start + tokens, at::TensorOptions().dtype(at::kLong));
    const layers::Rotary rotary =
        layers::rotary_for(positions, inverse_frequencies, scalar_type(dtype));

    at::Tensor h = embed.index_select(0, id_tensor);  // [T, hidden]
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerWeights& w = layers[i];
      const auto layer = static_cast<int64_t>(i);
      const at::Tensor x = layers::rms_norm(h, w.input_norm, eps);
      const auto qkv = linear(x, {&w.q, &w.k, &w.v});
      at::Tensor q = qkv[0].reshape({tokens, heads, head_dim});
      at::Tensor k = qkv[1].reshape({tokens, kv_heads, head_dim});
      const at::Tensor v = qkv[2].reshape({tokens, kv_heads, head_dim});
      q = layers::apply_rotary(layers::rms_norm(q, w.q_norm, eps), rotary);
      k = layers::apply_rotary(layers::rms_norm(k, w.k_norm, eps), rotary);
      cache.write(layer, start, k, v);
      const at::Tensor attended = layers::attention(q, cache.keys(layer, start + tokens),
                                                    cache.values(layer, start + tokens), start);
      h = h + linear(attended, {&w.o})[0];
      const at::Tensor y = layers::rms_norm(h, w.post_norm, eps);
      const auto gate_up = linear(y, {&w.gate, &w.up});
      h = h + linear(at::silu(gate_up[0]) * gate_up[1], {&w.down})[0];
    }
    cache.set_length(start + tokens);
    if (!all_logits) h = h.narrow(0, tokens - 1, 1);
    h = layers::rms_norm(h, final_norm, eps);
    return linear(h, {&head}, /*fp32_out=*/true)[0].contiguous();
  }
};

Qwen3Model::Qwen3Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Qwen3Model::~Qwen3Model() = default;

Result<std::unique_ptr<Qwen3Model>> Qwen3Model::load(const std::filesystem::path& directory,
                                                     const ModelOptions& options) {
  PIO_ASSIGN_OR_RETURN(Qwen3Config config, load_qwen3_config(directory));
  PIO_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::open(directory));
  return from_checkpoint(config, std::move(checkpoint), options);
}

Result<std::unique_ptr<Qwen3Model>> Qwen3Model::from_checkpoint(const Qwen3Config& config,
                                                                Checkpoint checkpoint,
                                                                const ModelOptions& options) {
  const std::string where = checkpoint.directory().string();
  if (config.num_key_value_heads <= 0 ||
      config.num_attention_heads % config.num_key_value_heads != 0 || config.head_dim % 2 != 0) {
    return invalid_argument_error(fmt::format(
        "{}: num_attention_heads {} must be a multiple of num_key_value_heads {} and head_dim {} "
        "even",
        where, config.num_attention_heads, config.num_key_value_heads, config.head_dim));
  }
  // The weights' dtype is the embedding table's; every other tensor must have the same.
  const TensorView* embed = checkpoint.find("model.embed_tokens.weight");
  if (embed == nullptr) {
    return invalid_argument_error(
        fmt::format("{}: the checkpoint has no model.embed_tokens.weight", where));
  }
  const DType dtype = embed->dtype;
  if (dtype != DType::kBF16 && dtype != DType::kF32) {
    return unimplemented_error(fmt::format(
        "{}: weights of dtype {} are not supported (bf16 and f32 are)", where, dtype_name(dtype)));
  }
  PIO_RETURN_IF_ERROR(
      check_checkpoint_tensors(checkpoint, qwen3_dense_tensors(config, dtype)).with_context(where));
  if (options.threads < 1) {
    return invalid_argument_error(fmt::format("threads must be >= 1, not {}", options.threads));
  }

  try {
    at::set_num_threads(options.threads);
    auto impl = std::make_unique<Impl>(config, dtype, std::move(checkpoint), options);
    const Checkpoint& ckpt = impl->checkpoint;
    auto tensor = [&](const std::string& name) { return in_place(*ckpt.find(name)); };
    impl->embed = tensor("model.embed_tokens.weight");
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      const std::string p = fmt::format("model.layers.{}.", i);
      impl->layers.push_back(LayerWeights{
          tensor(p + "input_layernorm.weight"), tensor(p + "self_attn.q_proj.weight"),
          tensor(p + "self_attn.k_proj.weight"), tensor(p + "self_attn.v_proj.weight"),
          tensor(p + "self_attn.o_proj.weight"), tensor(p + "self_attn.q_norm.weight"),
          tensor(p + "self_attn.k_norm.weight"), tensor(p + "post_attention_layernorm.weight"),
          tensor(p + "mlp.gate_proj.weight"), tensor(p + "mlp.up_proj.weight"),
          tensor(p + "mlp.down_proj.weight")});
    }
    impl->final_norm = tensor("model.norm.weight");
    impl->head = config.tie_word_embeddings ? impl->embed : tensor("lm_head.weight");
    impl->inverse_frequencies =
        layers::rope_inverse_frequencies(config.head_dim, config.rope_theta);
    return std::unique_ptr<Qwen3Model>(new Qwen3Model(std::move(impl)));
  } catch (const std::exception& e) {
    return internal_error(fmt::format("{}: building the model: {}", where, e.what()));
  }
}

const Qwen3Config& Qwen3Model::config() const { return impl_->config; }
DType Qwen3Model::dtype() const { return impl_->dtype; }

uint64_t Qwen3Model::weight_bytes_per_token() const {
  uint64_t bytes = 0;
  auto add = [&](const at::Tensor& t) { bytes += static_cast<uint64_t>(t.nbytes()); };
  for (const LayerWeights& w : impl_->layers) {
    for (const at::Tensor* t : {&w.input_norm, &w.q, &w.k, &w.v, &w.o, &w.q_norm, &w.k_norm,
                                &w.post_norm, &w.gate, &w.up, &w.down}) {
      add(*t);
    }
  }
  add(impl_->final_norm);
  add(impl_->head);
  bytes += static_cast<uint64_t>(impl_->embed.size(1) * impl_->embed.element_size());
  return bytes;
}

Result<KvCache> Qwen3Model::new_cache(int64_t capacity) const {
  const Qwen3Config& c = impl_->config;
  if (capacity < 1 || capacity > c.max_position_embeddings) {
    return invalid_argument_error(
        fmt::format("KV cache capacity {} is outside [1, max_position_embeddings {}]", capacity,
                    c.max_position_embeddings));
  }
  try {
    return KvCache(std::make_unique<KvCacheStorage>(c.num_hidden_layers, c.num_key_value_heads,
                                                    c.head_dim, capacity, scalar_type(impl_->dtype),
                                                    impl_.get()));
  } catch (const std::exception& e) {
    return resource_exhausted_error(
        fmt::format("allocating a KV cache of {} tokens: {}", capacity, e.what()));
  }
}

Result<std::vector<float>> Qwen3Model::forward(std::span<const int32_t> ids, int64_t start,
                                               KvCache& cache, bool all_logits) {
  KvCacheStorage& storage = cache.storage();
  if (storage.owner() != impl_.get()) {
    return invalid_argument_error("forward: the KV cache was made by another model");
  }
  if (ids.empty()) return invalid_argument_error("forward: no token ids");
  if (start < 0 || start > storage.length()) {
    return invalid_argument_error(fmt::format(
        "forward: start position {} is past the cached length {}", start, storage.length()));
  }
  const auto tokens = static_cast<int64_t>(ids.size());
  if (start + tokens > storage.capacity()) {
    return resource_exhausted_error(
        fmt::format("forward: positions up to {} do not fit the KV cache's capacity {}",
                    start + tokens, storage.capacity()));
  }
  const int64_t vocab = impl_->config.vocab_size;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return invalid_argument_error(
          fmt::format("forward: token id {} is outside the vocabulary [0, {})", id, vocab));
    }
  }
  try {
    const at::Tensor logits = impl_->forward(ids, start, storage, all_logits);
    const float* data = logits.data_ptr<float>();
    return std::vector<float>(data, data + logits.numel());
  } catch (const std::exception& e) {
    // A libtorch failure leaves the cache's later positions unknown: keep only what was there.
    storage.set_length(std::min(storage.length(), start));
    return internal_error(fmt::format("forward: {}", e.what()));
  }
}

}  // namespace pio::runtime
