#pragma once
// Qwen3Model: the Qwen3 dense decoder (models.md sections 2-3) run with libtorch on the CPU, in
// the checkpoint's dtype (bf16 or fp32), over weights used in place in the mapped safetensors
// files (no copy).
//
// What a caller gets wrong:
// - forward() is not re-entrant: one call at a time per model (it shares the GEMV thread pool and
//   scratch state); run several sequences by calling it for each in turn.
// - Loading sets libtorch's process-wide intra-op thread count to ModelOptions::threads.
// - In bf16, decode (one token) and prefill (several) take different kernels, so the same
//   position's logits differ between them by bf16 rounding; in fp32 they agree to ~1e-6.
// - bf16 attention computes in fp32 (see torch_layers.cc), more precisely than transformers'
//   bf16 matmuls; logits agree with theirs to bf16 rounding, not bit for bit.
//
// This header does not include libtorch; only the library's own sources do.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/kv_cache.h"
#include "pio/runtime/model_config.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

struct ModelOptions {
  // libtorch intra-op threads and the decode GEMV's threads.
  int threads = 2;
  // bf16: the big projections through pio::kernels (gemv_bf16 for one token, gemm_bf16 for
  // several) instead of libtorch's matmul, which streams weights at under half the read
  // bandwidth and, being oneDNN's run-time generated code, cannot run at low trust at all.
  // Off only to compare.
  bool gemv_kernel = true;
};

class Qwen3Model {
 public:
  // Reads config.json and the safetensors weights of a Hugging Face checkpoint directory. Errors
  // name the file or tensor at fault (missing, mis-shaped, mis-typed tensors all listed).
  static Result<std::unique_ptr<Qwen3Model>> load(const std::filesystem::path& directory,
                                                  const ModelOptions& options = {});
  // Same over a checkpoint the caller opened (the model keeps it alive).
  static Result<std::unique_ptr<Qwen3Model>> from_checkpoint(const Qwen3Config& config,
                                                             Checkpoint checkpoint,
                                                             const ModelOptions& options = {});
  ~Qwen3Model();
  Qwen3Model(const Qwen3Model&) = delete;
  Qwen3Model& operator=(const Qwen3Model&) = delete;

  const Qwen3Config& config() const;
  DType dtype() const;
  int64_t vocab_size() const { return config().vocab_size; }
  // Bytes of weights one decoded token reads (every matrix once, one embedding row): what bounds
  // decode speed by memory bandwidth.
  uint64_t weight_bytes_per_token() const;

  // A cache for one sequence of at most `capacity` tokens (<= max_position_embeddings).
  Result<KvCache> new_cache(int64_t capacity) const;

  // Runs `ids` at positions start, start+1, ... (start <= cache.length(); the cache keeps the
  // earlier tokens and forgets any from `start` on), stores their keys and values in `cache`
  // (whose length becomes start + ids.size()) and returns fp32 logits, row-major: one row per
  // token with `all_logits`, else the last token's only. The cache must come from this model.
  Result<std::vector<float>> forward(std::span<const int32_t> ids, int64_t start, KvCache& cache,
                                     bool all_logits = false);

 private:
  struct Impl;
  explicit Qwen3Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pio::runtime
