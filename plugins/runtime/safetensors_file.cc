#include "pio/runtime/safetensors_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <utility>

#include "pio/runtime/safetensors_header.h"

namespace pio::runtime {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno_status(fmt::format("open safetensors file \"{}\"", path.string()), errno);
  return open_fd(UniqueFd(fd), path.string());
}

Result<SafetensorsFile> SafetensorsFile::open_fd(UniqueFd fd, std::string label) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return errno_status(fmt::format("fstat safetensors file \"{}\"", label), errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return invalid_argument_error(
        fmt::format("safetensors file \"{}\" is not a regular file", label));
  }
  if (st.st_size < 8) {
    return invalid_argument_error(fmt::format(
        "safetensors file \"{}\": file is {} bytes, shorter than the 8-byte header length it "
        "must start with",
        label, st.st_size));
  }
  SafetensorsFile file;
  file.label_ = std::move(label);
  file.size_ = static_cast<size_t>(st.st_size);
  void* mapping = ::mmap(nullptr, file.size_, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (mapping == MAP_FAILED) {
    return errno_status(fmt::format("mmap safetensors file \"{}\"", file.label_), errno);
  }
  file.mapping_ = mapping;  // the fd can close now; the mapping keeps the file alive

  const std::span<const std::byte> bytes(static_cast<const std::byte*>(mapping), file.size_);
  PIO_ASSIGN_OR_RETURN(SafetensorsHeader header, parse_safetensors_header(bytes, file.label_));
  file.metadata_ = std::move(header.metadata);
  file.tensors_.reserve(header.tensors.size());
  for (SafetensorsTensorInfo& info : header.tensors) {
    file.index_.emplace(info.name, file.tensors_.size());
    file.tensors_.push_back(TensorView{
        .name = std::move(info.name),
        .dtype = info.dtype,
        .shape = std::move(info.shape),
        .data = bytes.data() + info.file_offset,
        .byte_length = static_cast<size_t>(info.byte_length),
        .file = file.label_,
    });
  }
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : label_(std::move(other.label_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      tensors_(std::move(other.tensors_)),
      index_(std::move(other.index_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    label_ = std::move(other.label_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    size_ = std::exchange(other.size_, 0);
    tensors_ = std::move(other.tensors_);
    index_ = std::move(other.index_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
  mapping_ = nullptr;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace pio::runtime
