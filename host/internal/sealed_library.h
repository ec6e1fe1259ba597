#pragma once
// The plugin library as a worker maps it. Once per spawn the host copies the library file into a
// memfd, seals it against every change, hashes the sealed bytes and compares them with the
// manifest's sha256; the worker loads that memfd (pio-worker --library-fd), never the path. A
// library swapped or rewritten on disk after activation is refused at the next (re)start instead
// of loading unchecked, and nothing written to the file later changes what a worker has mapped.
//
// The one thing a caller gets wrong: the memfd's memory is charged to the host's cgroup, one copy
// per spawn; close it once the spawn returned (the worker holds its own descriptor).

#include "pio/host/plugin_manifest.h"
#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::host {

// permission_denied naming both digests when the bytes do not match the manifest; not_found
// when the library is missing or not a regular file (a symlink is refused).
Result<UniqueFd> seal_plugin_library(const PluginManifest& manifest);

}  // namespace pio::host
