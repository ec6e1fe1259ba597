#pragma once
// What the latency benchmarks share: per-iteration samples with their percentiles, and the map of
// figures a run's summary is computed from (each benchmark adds its own; BM_Summary reads them).

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace pio::bench {

// Samples in microseconds.
struct Samples {
  std::vector<double> us;
  template <typename Rep, typename Period>
  void add(std::chrono::duration<Rep, Period> d) {
    us.push_back(std::chrono::duration<double, std::micro>(d).count());
  }
  // The p-quantile (0 <= p <= 1) by rank; 0 with no samples.
  double percentile(double p) {
    std::sort(us.begin(), us.end());
    return us.empty() ? 0 : us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))];
  }
};

inline std::map<std::string, double>& figures() {
  static std::map<std::string, double> f;
  return f;
}

}  // namespace pio::bench
