#pragma once
// What a worker executable started by WorkerLauncher finds, and the one call it must make.
//
// The one thing a caller gets wrong: apply_stage2_filter() must run after the worker has parsed
// its arguments and mapped the arena (and closed the arena fd), and before it loads any plugin
// code: a plugin's static constructors already run under stage 2. Nothing lifts it afterwards.

#include "pio/ipc/status.h"

namespace pio::sandbox {

// The worker's file descriptors after exec (all others are closed). stdin is /dev/null;
// stdout and stderr are the host's log pipe or /dev/null.
inline constexpr int kControlFd = 3;       // AF_UNIX SOCK_SEQPACKET control channel
inline constexpr int kArenaFd = 4;         // memfd arena; absent when the host passed none
inline constexpr int kStage2FilterFd = 5;  // sealed memfd: the stage-2 BPF program
// Sealed memfd holding the plugin library whose sha256 the host checked, when the host passed
// one: load it through /proc/self/fd/7, never by path.
inline constexpr int kPluginLibraryFd = 7;

// Loads the stage-2 seccomp filter (no execve, no new sockets but AF_INET/AF_INET6 ones when the
// network is granted, no memfd_create) from `filter_fd` and closes the fd. An empty program
// means the policy grants no syscall filtering (maximum trust). A missing or unreadable fd is an
// error: the worker must then exit without loading the plugin.
Status apply_stage2_filter(int filter_fd = kStage2FilterFd);

}  // namespace pio::sandbox
