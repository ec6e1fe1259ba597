#pragma once
// One packet on an AF_UNIX SOCK_SEQPACKET socket, with file descriptors passed as SCM_RIGHTS.
// Both functions are non-blocking when MSG_DONTWAIT is in `flags`.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::ipc {

// Most descriptors one packet may carry; a packet with more is refused (and the ones that did
// arrive are closed).
inline constexpr size_t kMaxFdsPerPacket = 8;

// Creates a connected SEQPACKET socketpair (close-on-exec).
Result<std::pair<UniqueFd, UniqueFd>> make_packet_socketpair();

Status send_packet(int socket, std::span<const uint8_t> bytes, std::span<const int> fds = {},
                   int flags = 0);

struct ReceivedPacket {
  bool end_of_stream = false;  // the peer closed its end
  std::vector<UniqueFd> fds;
};

// Receives one packet into *bytes (resized to the packet). A packet larger than `max_bytes` is
// consumed and refused with invalid_argument naming both sizes; resource_exhausted with
// MSG_DONTWAIT when nothing is there.
Result<ReceivedPacket> receive_packet(int socket, std::vector<uint8_t>* bytes, size_t max_bytes,
                                      int flags = 0);

}  // namespace pio::ipc
