#include "pio/host/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "fmt/format.h"
#include "pio/ipc/unique_fd.h"

namespace pio::host {

Result<std::string> sha256_file_hex(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_status(fmt::format("open \"{}\"", path.string()), errno);
  return sha256_fd_hex(fd.get(), path.string());
}

Result<std::string> sha256_fd_hex(int fd, std::string_view what) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return internal_error("sha256: OpenSSL could not start a SHA-256 digest");
  }
  std::vector<unsigned char> buffer(1 << 16);
  for (off_t offset = 0;;) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(fmt::format("read \"{}\"", what), errno);
    }
    if (n == 0) break;
    offset += n;
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n)) != 1) {
      return internal_error("sha256: OpenSSL digest update failed");
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    return internal_error("sha256: OpenSSL digest final failed");
  }
  std::string hex;
  hex.reserve(size_t{length} * 2);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace pio::host
