// A test plugin whose static constructor tries what stage 2 forbids (a new socket, a memfd, an
// execve) before any verb runs, and whose get_model_info reports what happened. Under the
// sandbox each attempt must already fail: pio-worker installs stage 2 before it loads a plugin.

#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pio/plugin.hpp"

namespace {

struct Attempts {
  int socket_errno = 0;  // 0: the socket was created
  int memfd_errno = 0;   // 0: the memfd was created
  int execve_errno = 0;  // execve of /bin/true; it only returns on failure
};

Attempts attempt_at_load() {
  Attempts a;
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  a.socket_errno = s < 0 ? errno : 0;
  if (s >= 0) close(s);
  const int m = memfd_create("probe", MFD_CLOEXEC);
  a.memfd_errno = m < 0 ? errno : 0;
  if (m >= 0) close(m);
  char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
  char* const envp[] = {nullptr};
  // Replacing the worker would be the plugin's win; a test without the sandbox never loads this.
  execve("/bin/true", argv, envp);
  a.execve_errno = errno;
  return a;
}

const Attempts kAtLoad = attempt_at_load();

class ConstructorProbePlugin final : public pio::sdk::ModelPlugin {
 public:
  static constexpr const char* kPluginName = "constructor_probe";
  static constexpr const char* kPluginVersion = "0.0.1";

  pio::Status load_model(const pio::sdk::ModelSource&, const pio::sdk::Json&) override {
    return pio::ok_status();
  }
  pio::Status infer(std::span<const pio::sdk::TensorView>, pio::sdk::CallContext&) override {
    return pio::ok_status();
  }
  pio::Result<pio::sdk::Json> get_model_info() override {
    return pio::sdk::Json{{"socket_errno", kAtLoad.socket_errno},
                          {"memfd_errno", kAtLoad.memfd_errno},
                          {"execve_errno", kAtLoad.execve_errno}};
  }
};

}  // namespace

PIO_PLUGIN(ConstructorProbePlugin)
