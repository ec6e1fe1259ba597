#pragma once
// Lingering close, as nginx does it: how to end a connection after answering a request whose
// body was not read (413 body too large, 431, a malformed request). Closing a socket that still
// holds unread bytes makes the kernel send a reset, and a client still writing its body then
// fails on its write (the OpenAI Node SDK reports "Connection error.") instead of reading the
// answer it was sent. So: shut down our sending side (the client sees the answer end), read and
// discard what the client still sends until it closes, `time` passes or `bytes` were read, and
// only then close.
//
// The one thing a caller gets wrong: `done` must close the connection; until it runs, nothing
// else may read from or write to the stream.

#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstddef>
#include <functional>

namespace pio::server {

struct LingerLimits {
  std::chrono::milliseconds time{30'000};
  size_t bytes = size_t{256} << 20;
};

// Network thread only. `done` runs once, on the stream's executor.
void linger_then(boost::beast::tcp_stream& stream, LingerLimits limits, std::function<void()> done);

}  // namespace pio::server
