// An application that embeds the host: it loads the plugins of a folder, activates one, serves
// requests from several threads, and keeps serving while that plugin's worker crashes (here the
// application kills the worker itself, as a stand-in for a plugin bug: a real crash looks the same
// to the host).
//
//   pio_embed_example PLUGIN_DIR [PLUGIN_NAME]      (default plugin: echo)
//
// Expected output: a few answers, "worker <pid> killed", one request that ends with
// worker_crashed (or is served by the restarted worker), then answers from a new worker pid.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include "pio/host/host.h"

namespace {

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PLUGIN_DIR [PLUGIN_NAME]\n", argv[0]);
    return 2;
  }
  const std::string plugin = argc > 2 ? argv[2] : "echo";

  pio::host::HostConfig config = pio::host::default_host_config();
  config.plugin_dirs = {argv[1]};
  config.cgroup_base = "/";  // a root host puts its workers' cgroups at the hierarchy's top
  config.defaults.restart.backoff_initial = std::chrono::milliseconds(10);
  auto created = pio::Host::create(config);
  if (!created.ok()) {
    std::fprintf(stderr, "cannot start the host: %s\n", created.status().to_string().c_str());
    return 1;
  }
  pio::Host& host = **created;

  const auto report = host.discover_and_load_plugins();
  for (const auto& skipped : report.skipped)
    std::fprintf(stderr, "skipped: %s\n", skipped.message().c_str());
  if (pio::Status s = host.activate_plugin(plugin); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }

  auto serve = [&](int round) {
    auto answer = host.generate(plugin, "round " + std::to_string(round), {.max_tokens = 32});
    const auto status = host.plugin_status(plugin);
    const int pid = status.ok() ? status->pid : 0;
    if (answer.ok()) {
      std::printf("round %d: \"%s\" (worker %d)\n", round, answer->text.c_str(), pid);
    } else {
      std::printf("round %d: %s\n", round, answer.status().to_string().c_str());
    }
  };

  for (int round = 0; round < 3; ++round) serve(round);
  const auto status = host.plugin_status(plugin);
  if (status.ok() && status->pid > 0) {
    ::kill(status->pid, SIGKILL);
    std::printf("worker %d killed\n", status->pid);
  }
  for (int round = 3; round < 8; ++round) {
    serve(round);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto after = host.plugin_status(plugin);
  if (after.ok()) {
    std::printf("%s: %s, %u restart(s); last crash: %s\n", plugin.c_str(),
                std::string(pio::host::plugin_state_name(after->state)).c_str(), after->restarts,
                after->last_crash.c_str());
  }
  return pio::Status(host.deactivate_plugin(plugin)).ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The host reports its failures as Status; what can still throw here is the example's own
  // string handling (out of memory).
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pio_embed_example: %s\n", e.what());
    return 1;
  }
}
