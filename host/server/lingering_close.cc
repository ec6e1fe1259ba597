#include "lingering_close.h"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

namespace pio::server {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;

class Discard : public std::enable_shared_from_this<Discard> {
 public:
  Discard(beast::tcp_stream& stream, size_t left, std::function<void()> done)
      : stream_(stream), left_(left), done_(std::move(done)) {}

  void read() {
    stream_.async_read_some(net::buffer(buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              // The client closed, went away, or took too long or too much.
                              if (ec || n >= self->left_) return self->done_();
                              self->left_ -= n;
                              self->read();
                            });
  }

 private:
  beast::tcp_stream& stream_;
  size_t left_;
  std::function<void()> done_;
  std::array<char, size_t{64} * 1024> buffer_;
};

}  // namespace

void linger_then(beast::tcp_stream& stream, LingerLimits limits, std::function<void()> done) {
  beast::error_code ignored;
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  stream.expires_after(limits.time);
  std::make_shared<Discard>(stream, limits.bytes, std::move(done))->read();
}

}  // namespace pio::server
