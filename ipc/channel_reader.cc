#include "pio/ipc/channel_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>

namespace pio::ipc {

Result<std::shared_ptr<ChannelReader>> ChannelReader::start(boost::asio::io_context& io,
                                                            Channel& channel,
                                                            MessageHandler on_message,
                                                            EndHandler on_end) {
  // The reader waits on its own descriptor of the socket, so the Channel keeps sole ownership of
  // the original and the two can be closed in any order.
  UniqueFd dup_fd(fcntl(channel.socket_fd(), F_DUPFD_CLOEXEC, 0));
  if (!dup_fd) return errno_status("dup of the control socket", errno);
  auto reader = std::make_shared<ChannelReader>(io, channel, std::move(dup_fd),
                                                std::move(on_message), std::move(on_end));
  boost::asio::post(io, [reader] { reader->pump(); });
  return reader;
}

ChannelReader::ChannelReader(boost::asio::io_context& io, Channel& channel, UniqueFd socket_dup,
                             MessageHandler on_message, EndHandler on_end)
    : channel_(channel),
      socket_(io, socket_dup.release()),
      on_message_(std::move(on_message)),
      on_end_(std::move(on_end)) {}

void ChannelReader::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  socket_.cancel(ignored);
}

void ChannelReader::end(const Status& status) {
  if (stopped_) return;
  stopped_ = true;
  if (on_end_) on_end_(status);
}

void ChannelReader::pump() {
  while (!stopped_) {
    Result<bool> got = channel_.try_receive(&message_);
    if (!got.ok()) return end(got.status());
    if (*got) {
      on_message_(message_);
      continue;
    }
    Result<bool> waiting = channel_.arm_wakeup();
    if (!waiting.ok()) return end(waiting.status());
    if (*waiting) continue;
    socket_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         if (ec || self->stopped_) return;
                         Status drained = self->channel_.drain_socket();
                         if (!drained.ok()) return self->end(drained);
                         self->pump();
                       });
    return;
  }
}

}  // namespace pio::ipc
