#pragma once
// Namespaces, host side: which clone() flags a policy gets on this kernel, and the one empty
// network namespace a root host's workers share. The child side is namespaces_child.cc.

#include <string>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"
#include "pio/sandbox/policy.h"
#include "pio/sandbox/probe.h"

namespace pio::sandbox {

// CLONE_NEW* flags for the policy's pid, net, ipc, mount and uts namespaces (never
// CLONE_NEWUSER: the launcher adds it for a non-root host, a root host's child unshares it
// after dropping root). Sets *user_namespace when the policy's user namespace is available.
// Appends what the kernel lacks to *missing.
int namespace_clone_flags(const Policy& policy, const KernelFeatures& features,
                          bool* user_namespace, std::vector<std::string>* missing);

// An empty network namespace (only a loopback device, down), made once per launcher.
Result<UniqueFd> make_empty_netns();

}  // namespace pio::sandbox
