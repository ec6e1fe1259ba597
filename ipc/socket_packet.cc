#include "pio/ipc/socket_packet.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace pio::ipc {
namespace {

// Closes every descriptor in the control messages of `msg` (used when refusing a packet).
void collect_fds(msghdr* msg, std::vector<UniqueFd>* fds) {
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c != nullptr; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(fd);
    }
  }
}

}  // namespace

Result<std::pair<UniqueFd, UniqueFd>> make_packet_socketpair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return errno_status("socketpair(AF_UNIX, SOCK_SEQPACKET)", errno);
  }
  return std::make_pair(UniqueFd(sv[0]), UniqueFd(sv[1]));
}

Status send_packet(int socket, std::span<const uint8_t> bytes, std::span<const int> fds,
                   int flags) {
  if (fds.size() > kMaxFdsPerPacket) {
    return invalid_argument_error(
        fmt::format("{} descriptors in one packet; at most {}", fds.size(), kMaxFdsPerPacket));
  }
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerPacket)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    const ssize_t n = sendmsg(socket, &msg, flags | MSG_NOSIGNAL);
    if (n >= 0) return ok_status();
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return resource_exhausted_error("control socket send buffer full");
    return errno_status(fmt::format("sendmsg of a {}-byte packet", bytes.size()), errno);
  }
}

Result<ReceivedPacket> receive_packet(int socket, std::vector<uint8_t>* bytes, size_t max_bytes,
                                      int flags) {
  // Learn the size first so the buffer is exactly as large as the packet (no zero-filling of a
  // maximum-sized buffer on every receive).
  ssize_t size;
  for (;;) {
    size = recv(socket, nullptr, 0, flags | MSG_PEEK | MSG_TRUNC);
    if (size >= 0 || errno != EINTR) break;
  }
  if (size < 0) {
    if (errno == EAGAIN) return resource_exhausted_error("no packet waiting");
    return errno_status("recv on the control socket", errno);
  }
  const bool oversized = static_cast<size_t>(size) > max_bytes;
  bytes->resize(oversized ? 0 : static_cast<size_t>(size));
  iovec iov{bytes->data(), bytes->size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerPacket)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  for (;;) {
    n = recvmsg(socket, &msg, (flags & ~MSG_PEEK) | MSG_CMSG_CLOEXEC);
    if (n >= 0 || errno != EINTR) break;
  }
  if (n < 0) {
    if (errno == EAGAIN) return resource_exhausted_error("no packet waiting");
    return errno_status("recvmsg on the control socket", errno);
  }
  ReceivedPacket packet;
  collect_fds(&msg, &packet.fds);  // owned from here on: closed if we refuse the packet
  if (oversized) {
    return invalid_argument_error(
        fmt::format("oversized packet: {} bytes, the limit is {}", size, max_bytes));
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return invalid_argument_error(
        fmt::format("packet carried more than {} descriptors", kMaxFdsPerPacket));
  }
  if (n == 0 && size == 0) {
    // A zero-length read is the end of the stream on SEQPACKET (we never send empty packets).
    packet.end_of_stream = true;
  }
  bytes->resize(static_cast<size_t>(n));
  return packet;
}

}  // namespace pio::ipc
