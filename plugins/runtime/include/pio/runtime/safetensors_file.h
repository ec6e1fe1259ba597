#pragma once
// SafetensorsFile: one safetensors file mapped read-only, its header validated, its tensors
// available as zero-copy views into the mapping.
//
// What a caller gets wrong: a TensorView's `data` points into this file's mapping and is valid
// only while the SafetensorsFile (or the Checkpoint holding it) lives; moving the object keeps
// the mapping where it is. The pages are shared with the page cache and mapped PROT_READ, so
// writing through a view faults: copy a tensor before changing it. A file shortened by someone
// else after open() turns reads of the missing pages into SIGBUS; model directories are
// read-only inside the sandbox, which is what makes mapping them safe.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"
#include "pio/runtime/safetensors_dtype.h"

namespace pio::runtime {

// A tensor in place: the shape is row-major and contiguous, as safetensors stores it. `data` is
// aligned to the element size (the header validation guarantees it).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t byte_length = 0;
  std::string file;  // label of the file it lives in, for messages

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Opens, maps and validates `path`; errors name the path.
  static Result<SafetensorsFile> open(const std::filesystem::path& path);
  // Same for an already opened file (the sandboxed worker opens through its path guard);
  // `label` names it in messages.
  static Result<SafetensorsFile> open_fd(UniqueFd fd, std::string label);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& label() const { return label_; }
  // In data order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when the file has no tensor of that name.
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  void unmap();

  std::string label_;
  void* mapping_ = nullptr;
  size_t size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

}  // namespace pio::runtime
