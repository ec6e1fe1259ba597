#include "pio/runtime/safetensors_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

namespace pio::runtime {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const {
    (void)std::fclose(f);
  }  // error paths only: success closes and checks
};

Status write_all(std::FILE* f, const void* data, size_t size, const std::string& path) {
  if (size != 0 && std::fwrite(data, 1, size, f) != size) {
    return errno_status(fmt::format("write \"{}\"", path), errno);
  }
  return ok_status();
}

}  // namespace

uint64_t TensorSpec::byte_length() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    PIO_CHECK(d >= 0);
    PIO_CHECK(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n));
  }
  return n;
}

Result<uint64_t> write_safetensors(const std::filesystem::path& path,
                                   std::vector<TensorSpec> tensors,
                                   const std::map<std::string, std::string>& metadata,
                                   const TensorFill& fill) {
  std::set<std::string_view> names;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second) {
      return invalid_argument_error(
          fmt::format("write_safetensors \"{}\": tensor name \"{}\" is empty, reserved or "
                      "used twice",
                      path.string(), t.name));
    }
  }
  std::sort(tensors.begin(), tensors.end(), [](const TensorSpec& a, const TensorSpec& b) {
    if (dtype_size(a.dtype) != dtype_size(b.dtype)) {
      return dtype_size(a.dtype) > dtype_size(b.dtype);
    }
    return a.name < b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    const uint64_t end = offset + t.byte_length();
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wbe"));
  if (!f) return errno_status(fmt::format("create \"{}\"", path.string()), errno);
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  PIO_RETURN_IF_ERROR(write_all(f.get(), length, sizeof length, path.string()));
  PIO_RETURN_IF_ERROR(write_all(f.get(), text.data(), text.size(), path.string()));
  std::vector<std::byte> buffer;
  for (const TensorSpec& t : tensors) {
    buffer.assign(t.byte_length(), std::byte{0});
    fill(t, buffer);
    PIO_RETURN_IF_ERROR(write_all(f.get(), buffer.data(), buffer.size(), path.string()));
  }
  if (std::fclose(f.release()) != 0) {
    return errno_status(fmt::format("close \"{}\"", path.string()), errno);
  }
  return 8 + text.size() + offset;
}

}  // namespace pio::runtime
