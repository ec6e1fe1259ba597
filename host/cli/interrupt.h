#pragma once
// Ctrl-C (SIGINT, and SIGTERM) for pio: while a generation streams, the first one cancels it (the
// Host then ends it with FinishReason::kCancelled and cleans up); any other time, or a second one,
// ends pio the default way.
//
// No signal handler runs: the signals are blocked in every thread and one thread takes them with
// sigwait, so what it does need not be async-signal-safe. pio-worker is unaffected: the spawn
// child clears the mask it inherits (sandbox/spawn_child.cc).
//
// The one thing a caller gets wrong: install() must run before any thread starts (before
// Host::create), or a thread created earlier keeps the signals unblocked and gets them itself.

namespace pio::cli::interrupt {

void install();

// Between arm() and disarm(), the first signal sets cancelled() instead of ending pio.
void arm();
// Returns whether a signal cancelled since arm().
bool disarm();
bool cancelled();

}  // namespace pio::cli::interrupt
