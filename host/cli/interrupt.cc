#include "interrupt.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

namespace pio::cli::interrupt {

namespace {

std::atomic<bool> armed{false};
std::atomic<bool> cancel{false};

sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

void watch() {
  const sigset_t set = watched();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (armed.exchange(false)) {
      cancel = true;
      continue;
    }
    // Die of the signal itself, so the shell sees what ended pio.
    (void)signal(sig, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    (void)raise(sig);
  }
}

}  // namespace

void install() {
  const sigset_t set = watched();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(watch).detach();
}

void arm() {
  cancel = false;
  armed = true;
}

bool disarm() {
  armed = false;
  return cancel.exchange(false);
}

bool cancelled() { return cancel.load(); }

}  // namespace pio::cli::interrupt
