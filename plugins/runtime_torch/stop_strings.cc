#include "pio/runtime/stop_strings.h"

#include <algorithm>

namespace pio::runtime {

StopStringScanner::StopStringScanner(std::vector<std::string> stop_strings)
    : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStringScanner::push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  // Everything before held_ was emitted because no suffix of it starts a stop string, so a stop
  // string can only begin inside held_. Take the earliest (then the longest at that place).
  size_t best = std::string::npos;
  for (const std::string& stop : stops_) {
    const size_t at = held_.find(stop);
    if (at == std::string::npos) continue;
    if (at < best || (at == best && stop.size() > matched_.size())) {
      best = at;
      matched_ = stop;
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of a stop string. A suffix starting
  // inside a UTF-8 character cannot be one (stop strings start with a lead byte), so what is
  // emitted ends on a character boundary.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    const size_t longest = std::min(stop.size() - 1, held_.size());
    for (size_t n = longest; n > hold; --n) {
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(stop).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopStringScanner::finish() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace pio::runtime
