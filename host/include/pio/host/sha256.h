#pragma once
// SHA-256 of a file (OpenSSL EVP), as lowercase hex. Used to check a plugin library against its
// manifest before the host ever hands it to a worker.

#include <filesystem>
#include <string>
#include <string_view>

#include "pio/ipc/status.h"

namespace pio::host {

// Reads the whole file; errors name the path.
Result<std::string> sha256_file_hex(const std::filesystem::path& path);

// Of the whole content of an open file, from offset 0 whatever the descriptor's offset (pread);
// errors name `what`.
Result<std::string> sha256_fd_hex(int fd, std::string_view what);

}  // namespace pio::host
