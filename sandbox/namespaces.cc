// Namespaces, host side.

#include "internal/namespaces.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "fmt/format.h"

namespace pio::sandbox {

int namespace_clone_flags(const Policy& policy, const KernelFeatures& features,
                          bool* user_namespace, std::vector<std::string>* missing) {
  struct NsFeature {
    Namespace ns;
    int flag;
    bool available;
  };
  int flags = 0;
  for (NsFeature n : {NsFeature{Namespace::kPid, CLONE_NEWPID, features.pid_namespaces},
                      NsFeature{Namespace::kNet, CLONE_NEWNET, features.net_namespaces},
                      NsFeature{Namespace::kIpc, CLONE_NEWIPC, features.ipc_namespaces},
                      NsFeature{Namespace::kMount, CLONE_NEWNS, features.mount_namespaces},
                      NsFeature{Namespace::kUts, CLONE_NEWUTS, features.uts_namespaces}}) {
    if (!policy.has_namespace(n.ns)) continue;
    if (n.available) {
      flags |= n.flag;
    } else {
      missing->push_back(fmt::format("{} namespace: not available", namespace_name(n.ns)));
    }
  }
  *user_namespace = false;
  if (policy.has_namespace(Namespace::kUser)) {
    if (features.user_namespaces) {
      *user_namespace = true;
    } else {
      missing->push_back("user namespace: not available (user.max_user_namespaces is 0)");
    }
  }
  if (!features.running_as_root && flags != 0 && !*user_namespace) {
    missing->push_back(
        "namespaces: a host that is not root needs the user namespace to create them");
    flags = 0;
  }
  return flags;
}

// Creating and tearing down a network namespace per worker costs about 0.5 ms of latency and as
// much machine CPU (limits.md 3c). Sharing one gives workers nothing to reach: no interface is
// up, stage 2 forbids new sockets, and Landlock (ABI >= 6) scopes abstract Unix sockets per
// worker.
Result<UniqueFd> make_empty_netns() {
  int fd = -1;
  int err = 0;
  // unshare() moves only the calling thread, so a short-lived thread does it.
  std::thread maker([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) err = errno;
  });
  maker.join();
  if (fd < 0) return errno_status("launcher: creating the shared empty network namespace", err);
  return UniqueFd(fd);
}

}  // namespace pio::sandbox
