#pragma once
// ChannelReader: the host's event-loop side of a Channel. It delivers every verified message to a
// handler on the Boost.Asio io_context, sleeping on the control socket between messages (the peer
// wakes it with a 1-byte packet), and reports once how the channel ended: the peer closed it
// (unavailable) or broke the protocol (invalid_argument).
//
// Handlers run on the io_context's thread; the InboundMessage passed to on_message is reused after
// the handler returns (move its fds out if you keep them). stop() must be called on that thread
// (or before the loop runs); the Channel must outlive the reader.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>

#include "pio/ipc/channel.h"

namespace pio::ipc {

class ChannelReader : public std::enable_shared_from_this<ChannelReader> {
 public:
  using MessageHandler = std::function<void(InboundMessage&)>;
  using EndHandler = std::function<void(const Status&)>;

  static Result<std::shared_ptr<ChannelReader>> start(boost::asio::io_context& io, Channel& channel,
                                                      MessageHandler on_message, EndHandler on_end);
  // Stops delivering; on_end is not called after this.
  void stop();

  ChannelReader(boost::asio::io_context& io, Channel& channel, UniqueFd socket_dup,
                MessageHandler on_message, EndHandler on_end);

 private:
  void pump();
  void end(const Status& status);

  Channel& channel_;
  boost::asio::posix::stream_descriptor socket_;
  MessageHandler on_message_;
  EndHandler on_end_;
  InboundMessage message_;
  bool stopped_ = false;
};

}  // namespace pio::ipc
