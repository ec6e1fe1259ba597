#pragma once
// ServerMetrics: what /metrics reports, in the Prometheus text exposition format (version 0.0.4).
//
//   pio_requests_total{endpoint, model, tenant, status}      counter
//   pio_request_duration_seconds{endpoint, model}             histogram
//   pio_time_to_first_token_seconds{model}                    histogram (streamed requests)
//   pio_inter_token_latency_seconds{model}                    histogram (streamed requests)
//   pio_prompt_tokens_total{model, tenant}                    counter
//   pio_generation_tokens_total{model, tenant}                counter
//   pio_requests_in_flight                                    gauge (running or waiting)
// and, read from the Host at each scrape (render's `plugins`):
//   pio_worker_restarts_total{plugin, plugin_instance}, pio_worker_crashes_total{...},
//   pio_worker_exits_total{plugin, plugin_instance, reason} (memory_limit, seccomp_violation,
//   deadline, ...), pio_plugin_quarantined{...}, pio_plugin_ready{...},
//   pio_worker_resident_bytes{...}
// plugin_instance is the Host instance of the worker: "" for the plugin's own, the tenant's name
// for a tenant's own worker ("<plugin>@<tenant>").
//
// Every label value comes from a bounded set: served model names (the caller passes "" for a
// model that is not served, so clients cannot add series), tenant and plugin names from the
// config, statuses and endpoints. They are still escaped as the format demands (backslash,
// double quote, newline). Thread-safe.

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pio/host/requests.h"

namespace pio::server {

class ServerMetrics {
 public:
  void request_done(std::string_view endpoint, std::string_view model, std::string_view tenant,
                    int http_status, double seconds);
  void tokens(std::string_view model, std::string_view tenant, uint64_t prompt, uint64_t generated);
  void first_token(std::string_view model, double seconds);
  void inter_token(std::string_view model, double seconds);
  void in_flight(int delta);

  std::string render(const std::vector<host::PluginStatus>& plugins) const;

  // "a\"b" for a"b: the escaping of a label value.
  static std::string escape_label(std::string_view value);

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative at render, per-bucket here
    double sum = 0;
    uint64_t count = 0;
  };
  static void observe(std::map<std::string, Histogram>& family, const std::vector<double>& bounds,
                      const std::string& labels, double value);
  static void render_histogram(std::string& out, const char* name, const char* help,
                               const std::vector<double>& bounds,
                               const std::map<std::string, Histogram>& family);

  mutable std::mutex mu_;
  std::map<std::string, uint64_t> requests_;
  std::map<std::string, Histogram> duration_;
  std::map<std::string, Histogram> ttft_;
  std::map<std::string, Histogram> itl_;
  std::map<std::string, uint64_t> prompt_tokens_;
  std::map<std::string, uint64_t> generation_tokens_;
  int64_t in_flight_ = 0;
};

}  // namespace pio::server
