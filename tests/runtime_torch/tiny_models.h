#pragma once
// Tiny Qwen3 checkpoints and a tokenizer for the runtime_torch tests, written into temp dirs.

#include <cstdint>
#include <filesystem>

#include "pio/runtime/model_config.h"
#include "pio/runtime/tokenizer.h"

namespace pio::runtime::testing {

// A directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// 2 layers, hidden 64, 4 query / 2 kv heads of 16, vocabulary 128, 512 positions.
Qwen3Config tiny_config(DType dtype, bool tied = true);

// Writes a pio-mkmodel checkpoint (the library code of the tool) of `config` into `dir`.
void write_mkmodel_checkpoint(const std::filesystem::path& dir, const Qwen3Config& config,
                              uint64_t seed);

// Writes a checkpoint whose norm weights are random too (mkmodel writes 1.0), with larger
// projections, so that a wrong use of any weight shows in the logits.
void write_random_norm_checkpoint(const std::filesystem::path& dir, const Qwen3Config& config,
                                  uint64_t seed);

// A byte-level tokenizer over the tiny vocabulary: id b is printable ASCII byte b (32 is the
// space, "Ġ"), id 1 is the special token "<|end|>", other ids name no token.
Tokenizer tiny_tokenizer();

}  // namespace pio::runtime::testing
