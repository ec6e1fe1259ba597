#pragma once
// StopStringScanner: watches streamed text for stop strings. Text that might be the start of a
// stop string is held back until the next pieces show whether it is, so a caller streaming the
// returned pieces never shows a client part of a stop string, nor the stop string itself.
//
// What a caller gets wrong: call finish() when the stream ends for any other reason (eos, max
// tokens), or the held-back tail (a prefix of some stop string that never completed) is lost.

#include <string>
#include <string_view>
#include <vector>

namespace pio::runtime {

class StopStringScanner {
 public:
  // Empty strings are ignored (they would match everywhere).
  explicit StopStringScanner(std::vector<std::string> stop_strings);

  // Adds `text`; returns what is now safe to emit. Once a stop string is complete, stopped() is
  // true, the returned text ends just before it, and later pushes return nothing.
  std::string push(std::string_view text);
  // The held-back tail, when the stream ends without a stop string.
  std::string finish();

  bool stopped() const { return stopped_; }
  // The stop string found (empty while none).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace pio::runtime
