// pio list: the plugins the plugin folders hold, and every folder that was skipped with why.
//
// It reads the folders with the Host's own PluginRegistry (same manifest checks, same library
// digest check, same skip reasons as Host::discover_and_load_plugins) but starts no Host: listing
// needs neither a worker nor a cgroup, and the registry has the manifests' family and description.

#include <cstdio>
#include <memory>

#include "cli_host.h"
#include "command.h"
#include "fmt/format.h"
#include "pio/host/plugin_registry.h"
#include "terminal_text.h"

namespace pio::cli {

namespace {

Status run_list(const HostOptions& options) {
  PIO_ASSIGN_OR_RETURN(host::HostConfig config, host_config_from(options, nullptr));
  host::PluginRegistry registry;
  std::vector<Status> skipped;
  for (const auto& dir : config.plugin_dirs) {
    host::DiscoveryReport report = registry.load_plugins_from_directory(dir);
    skipped.insert(skipped.end(), report.skipped.begin(), report.skipped.end());
  }
  const auto manifests = registry.list();
  size_t name_width = 4, version_width = 7, family_width = 6;
  for (const auto& m : manifests) {
    name_width = std::max(name_width, m.name.size());
    version_width = std::max(version_width, m.version.size());
    family_width = std::max(family_width, m.model_family.size());
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {}\n", "NAME", name_width, "VERSION", version_width, "FAMILY",
             family_width, "DESCRIPTION");
  // The manifests are the plugin authors' words: printed without terminal controls.
  for (const auto& m : manifests) {
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {}\n", m.name, name_width, terminal_text(m.version),
               version_width, terminal_text(m.model_family), family_width,
               terminal_text(m.description));
  }
  for (const auto& s : skipped) fmt::print("skipped: {}\n", terminal_text(s.message()));
  (void)std::fflush(stdout);
  return ok_status();
}

}  // namespace

void add_list_command(CLI::App& app, std::vector<Command>* commands) {
  CLI::App* sub = app.add_subcommand("list", "List the plugins found in the plugin folders");
  auto options = std::make_shared<HostOptions>();
  add_host_options(sub, options.get());
  commands->push_back({sub, [options] { return run_list(*options); }});
}

}  // namespace pio::cli
