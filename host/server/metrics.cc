#include "metrics.h"

#include <fmt/format.h>

#include <fstream>

namespace pio::server {
namespace {

const std::vector<double>& duration_bounds() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60,   120};
  return b;
}
const std::vector<double>& token_bounds() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}

std::string labels(std::initializer_list<std::pair<const char*, std::string_view>> pairs) {
  std::string out;
  for (const auto& [key, value] : pairs) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}=\"{}\"", key, ServerMetrics::escape_label(value));
  }
  return out;
}

// A worker's series: its plugin and its Host instance ("" for the plugin's own worker, the
// tenant for "<plugin>@<tenant>"), so that a plugin's workers never share a label set. Not
// "instance": Prometheus gives that label to the scraped target and would rename this one.
std::string worker_labels(const host::PluginStatus& p) {
  return labels({{"plugin", p.name}, {"plugin_instance", p.instance}});
}

std::string number(double v) { return fmt::format("{}", v); }

// Resident bytes of a process, from /proc (0 when it is gone).
uint64_t resident_bytes(int pid) {
  if (pid <= 0) return 0;
  std::ifstream statm(fmt::format("/proc/{}/statm", pid));
  uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * 4096;
}

}  // namespace

std::string ServerMetrics::escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void ServerMetrics::observe(std::map<std::string, Histogram>& family,
                            const std::vector<double>& bounds, const std::string& key,
                            double value) {
  Histogram& h = family[key];
  if (h.buckets.empty()) h.buckets.assign(bounds.size(), 0);
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++h.buckets[i];
      break;
    }
  }
  h.sum += value;
  ++h.count;
}

void ServerMetrics::request_done(std::string_view endpoint, std::string_view model,
                                 std::string_view tenant, int http_status, double seconds) {
  const std::string status = std::to_string(http_status);
  std::lock_guard lock(mu_);
  ++requests_[labels(
      {{"endpoint", endpoint}, {"model", model}, {"tenant", tenant}, {"status", status}})];
  observe(duration_, duration_bounds(), labels({{"endpoint", endpoint}, {"model", model}}),
          seconds);
}

void ServerMetrics::tokens(std::string_view model, std::string_view tenant, uint64_t prompt,
                           uint64_t generated) {
  const std::string key = labels({{"model", model}, {"tenant", tenant}});
  std::lock_guard lock(mu_);
  prompt_tokens_[key] += prompt;
  generation_tokens_[key] += generated;
}

void ServerMetrics::first_token(std::string_view model, double seconds) {
  std::lock_guard lock(mu_);
  observe(ttft_, duration_bounds(), labels({{"model", model}}), seconds);
}

void ServerMetrics::inter_token(std::string_view model, double seconds) {
  std::lock_guard lock(mu_);
  observe(itl_, token_bounds(), labels({{"model", model}}), seconds);
}

void ServerMetrics::in_flight(int delta) {
  std::lock_guard lock(mu_);
  in_flight_ += delta;
}

void ServerMetrics::render_histogram(std::string& out, const char* name, const char* help,
                                     const std::vector<double>& bounds,
                                     const std::map<std::string, Histogram>& family) {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  for (const auto& [key, h] : family) {
    const std::string sep = key.empty() ? "" : ",";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += h.buckets[i];
      out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, key, sep, number(bounds[i]),
                         cumulative);
    }
    out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, key, sep, h.count);
    out += fmt::format("{}_sum{{{}}} {}\n", name, key, number(h.sum));
    out += fmt::format("{}_count{{{}}} {}\n", name, key, h.count);
  }
}

std::string ServerMetrics::render(const std::vector<host::PluginStatus>& plugins) const {
  std::string out;
  auto counter = [&out](const char* name, const char* help,
                        const std::map<std::string, uint64_t>& family) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", name, help, name);
    for (const auto& [key, v] : family) out += fmt::format("{}{{{}}} {}\n", name, key, v);
  };
  {
    std::lock_guard lock(mu_);
    counter("pio_requests_total",
            "HTTP API requests answered, by endpoint, model, tenant and status.", requests_);
    render_histogram(out, "pio_request_duration_seconds",
                     "Time from a request's arrival to its answer's end.", duration_bounds(),
                     duration_);
    render_histogram(out, "pio_time_to_first_token_seconds",
                     "Time from a streamed request's arrival to its first token.",
                     duration_bounds(), ttft_);
    render_histogram(out, "pio_inter_token_latency_seconds",
                     "Time between two tokens of a streamed answer.", token_bounds(), itl_);
    counter("pio_prompt_tokens_total", "Prompt tokens of answered requests.", prompt_tokens_);
    counter("pio_generation_tokens_total", "Tokens generated for answered requests.",
            generation_tokens_);
    out += fmt::format(
        "# HELP pio_requests_in_flight Generation requests running or waiting for a thread.\n"
        "# TYPE pio_requests_in_flight gauge\npio_requests_in_flight {}\n",
        in_flight_);
  }
  auto per_plugin = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& p : plugins) {
      if (!p.active) continue;
      out += fmt::format("{}{{{}}} {}\n", name, worker_labels(p), value(p));
    }
  };
  per_plugin("pio_worker_restarts_total", "counter", "Times the plugin's worker was restarted.",
             [](const host::PluginStatus& p) { return p.restarts; });
  per_plugin("pio_worker_crashes_total", "counter",
             "Times the plugin's worker died or was killed (crash, limit, deadline, violation).",
             [](const host::PluginStatus& p) { return p.crashes; });
  per_plugin("pio_generations_resumed_total", "counter",
             "Generations that continued on a restarted worker after theirs died mid-stream.",
             [](const host::PluginStatus& p) { return p.resumed; });
  out +=
      "# HELP pio_worker_exits_total Worker deaths by how they ended (the sandbox's verdict: "
      "memory_limit, pids_limit, cpu_limit, seccomp_violation, deadline, signaled, exited, "
      "killed_by_host).\n# TYPE pio_worker_exits_total counter\n";
  for (const auto& p : plugins) {
    if (!p.active) continue;
    for (const auto& [reason, n] : p.exits) {
      out += fmt::format("pio_worker_exits_total{{{},{}}} {}\n", worker_labels(p),
                         labels({{"reason", reason}}), n);
    }
  }
  per_plugin("pio_plugin_quarantined", "gauge", "1 when the plugin is quarantined.",
             [](const host::PluginStatus& p) {
               return p.state == host::PluginState::kQuarantined ? 1 : 0;
             });
  per_plugin(
      "pio_plugin_ready", "gauge", "1 when the plugin's worker is ready.",
      [](const host::PluginStatus& p) { return p.state == host::PluginState::kReady ? 1 : 0; });
  per_plugin("pio_worker_resident_bytes", "gauge", "Resident memory of the plugin's worker.",
             [](const host::PluginStatus& p) { return resident_bytes(p.pid); });
  return out;
}

}  // namespace pio::server
