#pragma once
// SHA-256 of a file (OpenSSL EVP), as lowercase hex. Used to check a plugin library against its
// manifest before the host ever hands it to a worker.

#include <filesystem>
#include <string>

#include "pio/ipc/status.h"

namespace pio::host {

// Reads the whole file; errors name the path.
Result<std::string> sha256_file_hex(const std::filesystem::path& path);

}  // namespace pio::host
