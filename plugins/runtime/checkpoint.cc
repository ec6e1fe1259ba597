#include "pio/runtime/checkpoint.h"

#include <fmt/format.h>

#include <set>
#include <system_error>

#include "internal/checkpoint_json.h"

namespace pio::runtime {
namespace {

namespace fs = std::filesystem;

// A shard is a plain file name inside the checkpoint directory, never a path out of it.
Status check_shard_name(const std::string& name) {
  const bool plain = !name.empty() && name != "." && name != ".." &&
                     name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
  if (!plain || !name.ends_with(".safetensors")) {
    return invalid_argument_error(
        fmt::format("shard name \"{}\" is not a plain file name ending in .safetensors", name));
  }
  return ok_status();
}

// tensor name -> shard file name, from the parsed index; `label` names the index in errors.
Result<std::map<std::string, std::string>> weight_map_of(const nlohmann::json& index,
                                                         std::string_view label) {
  const auto fail = [label](std::string what) {
    return invalid_argument_error(fmt::format("\"{}\": {}", label, what));
  };
  if (!index.is_object()) return fail("not a JSON object");
  if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
    return fail("\"weight_map\" is missing or not an object");
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) {
      return fail(fmt::format("shard of tensor \"{}\" is not a string", tensor));
    }
    const std::string& shard_name = shard.get_ref<const std::string&>();
    Status valid = check_shard_name(shard_name);
    if (!valid.ok()) return fail(fmt::format("tensor \"{}\": {}", tensor, valid.message()));
    weight_map.emplace(tensor, shard_name);
  }
  if (weight_map.empty()) return fail("\"weight_map\" lists no tensor");
  return weight_map;
}

Result<std::map<std::string, std::string>> read_weight_map(const fs::path& index_path) {
  PIO_ASSIGN_OR_RETURN(nlohmann::json index, read_checkpoint_json(index_path));
  return weight_map_of(index, index_path.string());
}

}  // namespace

Result<Checkpoint> Checkpoint::open(const fs::path& directory) {
  Checkpoint checkpoint;
  checkpoint.directory_ = directory;
  std::error_code ec;
  const fs::path single = directory / kSingleSafetensorsName;
  const fs::path index_path = directory / kSafetensorsIndexName;
  if (fs::exists(single, ec)) {
    PIO_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(single));
    checkpoint.files_.push_back(std::move(file));
  } else if (fs::exists(index_path, ec)) {
    checkpoint.sharded_ = true;
    PIO_ASSIGN_OR_RETURN(auto weight_map, read_weight_map(index_path));
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : weight_map) shard_names.insert(shard);
    std::map<std::string, const SafetensorsFile*> shards;
    for (const std::string& shard : shard_names) {
      PIO_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(directory / shard));
      checkpoint.files_.push_back(std::move(file));
    }
    size_t i = 0;
    for (const std::string& shard : shard_names) shards[shard] = &checkpoint.files_[i++];
    for (const auto& [tensor, shard] : weight_map) {
      if (shards[shard]->find(tensor) == nullptr) {
        return invalid_argument_error(
            fmt::format("\"{}\" puts tensor \"{}\" in \"{}\", which does not hold it",
                        index_path.string(), tensor, shard));
      }
    }
    for (const auto& [shard, file] : shards) {
      for (const TensorView& view : file->tensors()) {
        auto it = weight_map.find(view.name);
        if (it == weight_map.end() || it->second != shard) {
          return invalid_argument_error(fmt::format(
              "shard \"{}\" holds tensor \"{}\", which \"{}\" {}", file->label(), view.name,
              index_path.string(),
              it == weight_map.end() ? "does not list" : "puts in \"" + it->second + "\""));
        }
      }
    }
  } else {
    return not_found_error(fmt::format("checkpoint directory \"{}\" has neither {} nor {}",
                                       directory.string(), kSingleSafetensorsName,
                                       kSafetensorsIndexName));
  }
  for (const SafetensorsFile& file : checkpoint.files_) {
    for (const TensorView& view : file.tensors()) checkpoint.tensors_.emplace(view.name, &view);
  }
  return checkpoint;
}

Result<std::map<std::string, std::string>> parse_safetensors_index(std::string_view json_text,
                                                                   std::string_view label) {
  PIO_ASSIGN_OR_RETURN(nlohmann::json index, parse_checkpoint_json(json_text, label));
  return weight_map_of(index, label);
}

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

}  // namespace pio::runtime
