#include "internal/checkpoint_json.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "pio/ipc/unique_fd.h"

namespace pio::runtime {

Result<nlohmann::json> parse_checkpoint_json(std::string_view text, std::string_view label) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument_error(fmt::format("\"{}\" is not valid JSON: {}", label, e.what()));
  }
}

Result<nlohmann::json> read_checkpoint_json(const std::filesystem::path& path) {
  const std::string label = path.string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_status(fmt::format("open \"{}\"", label), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_status(fmt::format("fstat \"{}\"", label), errno);
  if (!S_ISREG(st.st_mode)) {
    return invalid_argument_error(fmt::format("\"{}\" is not a regular file", label));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxCheckpointJsonBytes) {
    return invalid_argument_error(fmt::format("\"{}\" is {} bytes, over the {}-byte limit", label,
                                              st.st_size, kMaxCheckpointJsonBytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(fmt::format("read \"{}\"", label), errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return parse_checkpoint_json(text, label);
}

}  // namespace pio::runtime
