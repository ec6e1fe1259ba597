#include "internal/sealed_library.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fmt/format.h"
#include "pio/host/sha256.h"
#include "pio/ipc/errno_text.h"

namespace pio::host {
namespace {

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U  // Linux 6.3: executable even where vm.memfd_noexec defaults to no
#endif

Status copy_all(int from, int to, const std::string& what) {
  std::vector<char> buffer(1 << 20);
  for (;;) {
    ssize_t n = ::read(from, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(fmt::format("read {}", what), errno);
    if (n == 0) return ok_status();
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(to, buffer.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno_status(fmt::format("copying {} into a memfd", what), errno);
      done += w;
    }
  }
}

}  // namespace

Result<UniqueFd> seal_plugin_library(const PluginManifest& manifest) {
  const std::string library = manifest.library_path().string();
  UniqueFd file(::open(library.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  const int open_errno = errno;
  struct stat st {};
  if (!file.valid() || fstat(file.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return not_found_error(
        fmt::format("plugin \"{}\": library {} is missing or not a regular file (manifest {}){}",
                    manifest.name, library, manifest.manifest_path.string(),
                    file.valid() ? "" : fmt::format(": {}", errno_text(open_errno))));
  }
  const std::string name = fmt::format("pio-plugin-{}", manifest.name);
  UniqueFd copy(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
  if (!copy.valid() && errno == EINVAL) {
    copy.reset(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  }
  if (!copy.valid()) return errno_status(fmt::format("memfd_create for {}", library), errno);
  PIO_RETURN_IF_ERROR(copy_all(file.get(), copy.get(), library));
  if (fcntl(copy.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
      0) {
    return errno_status(fmt::format("sealing the copy of {}", library), errno);
  }
  // Hashed after sealing: these are exactly the bytes the worker will map.
  PIO_ASSIGN_OR_RETURN(std::string digest, sha256_fd_hex(copy.get(), library));
  if (digest != manifest.sha256) {
    return permission_denied_error(fmt::format(
        "plugin \"{}\": library {} has sha256 {} but its manifest {} says {} (sha256 mismatch: "
        "the file changed after the plugin was registered); refusing to start a worker from it "
        "(restore the library, or rebuild the plugin and activate it again)",
        manifest.name, library, digest, manifest.manifest_path.string(), manifest.sha256));
  }
  return copy;
}

}  // namespace pio::host
