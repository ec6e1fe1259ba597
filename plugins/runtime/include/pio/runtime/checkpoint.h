#pragma once
// Checkpoint: the weights of a Hugging Face checkpoint directory, mapped and validated:
// `model.safetensors`, or the shards named by `model.safetensors.index.json` (the single file
// wins when both exist, as in transformers).
//
// What a caller gets wrong: the views point into the mappings this object owns; keep the
// Checkpoint alive as long as any tensor built on a view (torch::from_blob does not copy). The
// index is untrusted like the shards: a shard name with a '/' or "..", a tensor the index puts
// in a shard that lacks it, or a shard holding tensors the index does not give it is an error.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/runtime/safetensors_file.h"

namespace pio::runtime {

inline constexpr std::string_view kSingleSafetensorsName = "model.safetensors";
inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";

// The weight_map of a model.safetensors.index.json (tensor name -> shard file name), with every
// shard name checked to be a plain "*.safetensors" file name; `label` names the index in errors.
Result<std::map<std::string, std::string>> parse_safetensors_index(std::string_view json_text,
                                                                   std::string_view label);

class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::filesystem::path& directory);

  const std::filesystem::path& directory() const { return directory_; }
  // nullptr when no file of the checkpoint holds that tensor.
  const TensorView* find(std::string_view name) const;
  // Every tensor of every file, by name.
  const std::map<std::string, const TensorView*, std::less<>>& tensors() const { return tensors_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  bool sharded() const { return sharded_; }

 private:
  Checkpoint() = default;

  std::filesystem::path directory_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const TensorView*, std::less<>> tensors_;
  bool sharded_ = false;
};

}  // namespace pio::runtime
