#include "internal/log_tail.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "pio/ipc/utf8.h"

namespace pio::host::internal {

Result<std::shared_ptr<LogTail>> LogTail::create(boost::asio::io_context& io, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return errno_status("worker log pipe", errno);
  UniqueFd read_end(fds[0]);
  write_end->reset(fds[1]);
  return std::make_shared<LogTail>(io, std::move(read_end));
}

LogTail::LogTail(boost::asio::io_context& io, UniqueFd read_end) : pipe_(io, read_end.release()) {}

void LogTail::start() { read_more(); }

void LogTail::read_more() {
  if (stopped_) return;
  pipe_.async_read_some(boost::asio::buffer(buffer_),
                        [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                          if (self->stopped_) return;
                          if (n > 0) self->consume(self->buffer_.data(), n);
                          if (!ec) self->read_more();
                        });
}

void LogTail::drain() {
  if (!pipe_.is_open()) return;
  for (;;) {
    const ssize_t n = ::read(pipe_.native_handle(), buffer_.data(), buffer_.size());
    if (n > 0) {
      consume(buffer_.data(), static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
}

void LogTail::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  pipe_.close(ec);
}

void LogTail::consume(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const char c = data[i];
    if (c == '\n') {
      lines_.push_back(std::move(partial_));
      partial_.clear();
      if (lines_.size() > kMaxLines) lines_.pop_front();
    } else if (partial_.size() < kMaxLineBytes) {
      // Control characters from the worker never reach a log or a terminal as such.
      partial_ += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
  }
}

std::string LogTail::text() const {
  std::string out;
  for (const auto& line : lines_) {
    if (!out.empty()) out += " | ";
    out += line;
  }
  if (!partial_.empty()) {
    if (!out.empty()) out += " | ";
    out += partial_;
  }
  // Lines keep the worker's bytes (a character may also be cut at kMaxLineBytes); the text goes
  // into crash reports that strict JSON dumps serialise, so it leaves here as valid UTF-8.
  return ipc::to_valid_utf8(out);
}

}  // namespace pio::host::internal
