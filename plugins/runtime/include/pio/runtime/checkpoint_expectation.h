#pragma once
// What a model needs from a checkpoint: each tensor's name, shape and dtype, and the check that
// a Checkpoint holds exactly that.
//
// The check lists every problem it finds (missing, extra, mis-shaped, mis-typed tensors), each
// naming the tensor with the expected and the actual shape and dtype, so one run tells what is
// wrong with a checkpoint. What a caller gets wrong: an optional tensor (a tied lm_head.weight)
// may be absent, but when present it is checked like any other; the model decides whether it
// uses it (a tied head reads the embedding table).

#include <cstdint>
#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/checkpoint.h"
#include "pio/runtime/model_config.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::kBF16;
  bool optional = false;
};

// ok, or invalid_argument listing every tensor that does not match (the first 20 in full).
Status check_checkpoint_tensors(const Checkpoint& checkpoint,
                                const std::vector<ExpectedTensor>& expected);

// The tensors of a Qwen3 dense checkpoint (models.md 2.4), all of `dtype`; lm_head.weight is
// optional when the config ties the embeddings, required otherwise.
std::vector<ExpectedTensor> qwen3_dense_tensors(const Qwen3Config& config, DType dtype);

}  // namespace pio::runtime
