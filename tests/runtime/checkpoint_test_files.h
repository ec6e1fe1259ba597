#pragma once
// Test helpers for checkpoint files: a temporary directory, and hand-made safetensors bytes
// (so tests can write headers that lie, which the writer never produces).

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/check.h"

namespace pio::runtime::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "pio-st-XXXXXX").string();
    PIO_CHECK(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  PIO_CHECK(out.good());
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// 8-byte little-endian `header_length` (the padded header's real length unless a test lies),
// the header text padded with spaces to a multiple of 8 (unless `pad` is false, which lets a
// test misalign the data), then `data_bytes` bytes counting up from 0.
inline std::string safetensors_bytes(std::string_view header, size_t data_bytes,
                                     int64_t header_length = -1, bool pad = true) {
  std::string text(header);
  if (pad) text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = header_length < 0 ? text.size() : static_cast<uint64_t>(header_length);
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  out.append(text);
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<char>(i & 0xff));
  return out;
}

inline std::vector<std::byte> as_bytes(std::string_view s) {
  std::vector<std::byte> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

}  // namespace pio::runtime::testing
