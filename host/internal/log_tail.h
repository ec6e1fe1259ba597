#pragma once
// LogTail: the read end of a worker's stdout/stderr pipe, drained on the host's Asio loop into a
// bounded tail of its last lines, so that a crash report can quote them.
//
// The one thing a caller gets wrong: a worker can write without end (or never a newline); only
// the last kMaxLines lines of at most kMaxLineBytes each are kept, whatever it writes. Loop
// thread only.

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <deque>
#include <memory>
#include <string>

#include "pio/ipc/status.h"
#include "pio/ipc/unique_fd.h"

namespace pio::host::internal {

class LogTail : public std::enable_shared_from_this<LogTail> {
 public:
  static constexpr size_t kMaxLines = 8;
  static constexpr size_t kMaxLineBytes = 256;

  // Makes the pipe; `write_end` receives the worker's end (pass it as SpawnRequest::log_fd, then
  // close it).
  static Result<std::shared_ptr<LogTail>> create(boost::asio::io_context& io, UniqueFd* write_end);
  LogTail(boost::asio::io_context& io, UniqueFd read_end);

  void start();
  // Reads what the pipe still holds without blocking (call when the worker has exited).
  void drain();
  void stop();
  // The kept lines joined with " | ", the last partial line included; valid UTF-8 (invalid bytes
  // become U+FFFD), control characters shown as '?'.
  std::string text() const;

 private:
  void consume(const char* data, size_t n);
  void read_more();

  boost::asio::posix::stream_descriptor pipe_;
  std::array<char, 4096> buffer_;
  std::deque<std::string> lines_;
  std::string partial_;
  bool stopped_ = false;
};

}  // namespace pio::host::internal
