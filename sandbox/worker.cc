// Worker: the host's handle on one worker process. Death is noticed through the pidfd on the
// Asio loop; reaping, classification and cleanup (cgroup, scratch) happen in one place.

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "internal/cgroup.h"
#include "pio/sandbox/launcher.h"
#include "spdlog/spdlog.h"

namespace pio::sandbox {
namespace {
constexpr int kPidfdIdType = 3;  // P_PIDFD (Linux 5.4)
}  // namespace

Worker::Worker(boost::asio::io_context& io, pid_t pid, UniqueFd pidfd, std::string name,
               std::unique_ptr<WorkerCgroup> cgroup, std::filesystem::path scratch_dir,
               ExitContext context, bool network_granted,
               std::function<void(const WorkerExit&)> on_exit)
    : pid_(pid),
      name_(std::move(name)),
      pidfd_(io, pidfd.release()),
      deadline_(io),
      cgroup_(std::move(cgroup)),
      scratch_dir_(std::move(scratch_dir)),
      context_(context),
      network_granted_(network_granted),
      on_exit_(std::move(on_exit)) {}

Worker::~Worker() {
  if (exit_) return;
  syscall(SYS_pidfd_send_signal, pidfd_.native_handle(), SIGKILL, nullptr, 0);
  context_.killed_by_host = true;
  on_exit_ = nullptr;  // nobody is left to tell
  // The kill is sent; what can throw below is bookkeeping (logging, out of memory), and a
  // destructor that throws ends the host.
  try {
    reap(true);
  } catch (...) {
    // Nothing is left to report to.
  }
}

const std::vector<std::string>& Worker::cgroup_dirs() const {
  static const std::vector<std::string> kNone;
  return cgroup_ ? cgroup_->dirs() : kNone;
}

void Worker::watch() {
  std::weak_ptr<Worker> weak = weak_from_this();
  pidfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [weak](const boost::system::error_code& ec) {
                      if (ec) return;
                      if (auto self = weak.lock()) {
                        if (!self->exit_) self->reap(false);
                      }
                    });
}

void Worker::kill() {
  if (exit_) return;
  context_.killed_by_host = true;
  syscall(SYS_pidfd_send_signal, pidfd_.native_handle(), SIGKILL, nullptr, 0);
}

void Worker::set_deadline(std::chrono::steady_clock::duration timeout) {
  if (exit_) return;
  deadline_.expires_after(timeout);
  std::weak_ptr<Worker> weak = weak_from_this();
  deadline_.async_wait([weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      if (self->exit_) return;
      self->context_.killed_for_deadline = true;
      syscall(SYS_pidfd_send_signal, self->pidfd_.native_handle(), SIGKILL, nullptr, 0);
    }
  });
}

void Worker::reap(bool blocking) {
  siginfo_t info{};
  rusage usage{};
  if (blocking) {
    // Asio made the pidfd O_NONBLOCK, and waitid() on a non-blocking pidfd returns EAGAIN
    // while the process still runs: wait for it to become readable (= exited) first.
    pollfd p{pidfd_.native_handle(), POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  long rc;
  do {
    rc = syscall(SYS_waitid, kPidfdIdType, pidfd_.native_handle(), &info,
                 WEXITED | (blocking ? 0 : WNOHANG), &usage);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 || info.si_pid == 0) {
    // EAGAIN: woken before the exit was reapable; wait again.
    if (!blocking) watch();
    return;
  }
  auto micros = [](const timeval& tv) {
    return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
  };
  CgroupCounters counters;
  if (cgroup_) {
    counters = cgroup_->counters();
    cgroup_->kill_all();
    if (Status s = cgroup_->remove(); !s.ok()) {
      spdlog::error("sandbox: worker {}: {}", name_, s.to_string());
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir_, ec);
  deadline_.cancel();
  exit_ = classify_exit(info.si_code, info.si_status,
                        std::chrono::duration_cast<std::chrono::microseconds>(
                            micros(usage.ru_utime) + micros(usage.ru_stime)),
                        counters, context_);
  boost::system::error_code closed;
  pidfd_.close(closed);  // the descriptor is gone either way
  if (on_exit_) {
    auto callback = std::move(on_exit_);
    callback(*exit_);
  }
}

}  // namespace pio::sandbox
