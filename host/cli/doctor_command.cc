// pio doctor: can this machine run plugins, and at which trust levels? It prints what the kernel
// gives the sandbox (sandbox::probe), where pio-worker, the policies and the plugins are, whether
// the GPU device nodes exist, and for each trust level what its policy needs that the kernel
// lacks and whether a worker would then fail closed or run degraded.
//
// The verdicts come from the real WorkerLauncher: it creates (and removes again) this instance's
// cgroup parent and compiles each policy exactly as a Host would, so a cgroup that is not
// delegated or a policy that does not parse shows up here and not first in `pio generate`. It
// compiles with allow_degraded set, only to see every policy's missing mechanisms; the verdict
// then applies the policy's on_missing_kernel_feature and the config's allow_degraded.

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_host.h"
#include "command.h"
#include "fmt/format.h"
#include "json_output.h"
#include "pio/host/plugin_registry.h"
#include "pio/sandbox/launcher.h"
#include "pio/sandbox/policy.h"
#include "pio/sandbox/probe.h"

namespace pio::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

constexpr sandbox::TrustLevel kLevels[] = {sandbox::TrustLevel::kLow, sandbox::TrustLevel::kMedium,
                                           sandbox::TrustLevel::kHigh,
                                           sandbox::TrustLevel::kMaximum};
constexpr const char* kControllers[] = {"memory", "pids", "cpu"};

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Whether the launcher gets `controller`: version 2 means a delegated v2 hierarchy (probe.h); with
// v1 each controller's hierarchy is writable or not on its own.
bool has_controller(const sandbox::CgroupFeatures& c, std::string_view controller) {
  if (c.version == 2) return contains(c.v2_controllers, controller);
  if (c.version == 1) return contains(c.v1_controllers, controller);
  return false;
}

std::vector<std::string> gpu_device_nodes() {
  std::vector<std::string> nodes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/dev", ec)) {
    if (entry.path().filename().string().starts_with("nvidia")) {
      nodes.push_back(entry.path().string());
    }
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

struct LevelReport {
  sandbox::TrustLevel level;
  bool used = false;  // by the config: its defaults or one of its plugins
  std::string on_missing;
  std::vector<std::string> missing;
  std::vector<std::string> notes;  // partial limits that do not count as missing
  // "full", "degraded", "fails_closed", or "unusable" (no launcher, or the policy fails to load).
  std::string verdict;
  std::string error;

  bool can_run() const { return verdict == "full" || verdict == "degraded"; }
};

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// A scratch root for the launcher (it wants one to exist); removed on the way out.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "pio-doctor-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<LevelReport> check_levels(const host::HostConfig& config,
                                      const sandbox::KernelFeatures& features,
                                      std::string* launcher_error) {
  std::set<sandbox::TrustLevel> used = {config.defaults.trust_level};
  for (const auto& [name, settings] : config.plugins) used.insert(settings.trust_level);

  boost::asio::io_context io;
  ScratchDir scratch;
  sandbox::LauncherOptions options;
  options.instance_name = fmt::format("doctor{}", getpid());
  options.scratch_root = scratch.path();
  options.cgroup_base = config.cgroup_base;
  options.allow_degraded = true;
  auto launcher = sandbox::WorkerLauncher::create(io, options, features);
  if (!launcher.ok()) *launcher_error = launcher.status().to_string();

  std::vector<LevelReport> reports;
  for (sandbox::TrustLevel level : kLevels) {
    LevelReport r{.level = level, .used = used.contains(level)};
    auto policy = sandbox::load_policy(config.policy_dir, level);
    if (!policy.ok()) {
      r.verdict = "unusable";
      r.error = policy.status().to_string();
      reports.push_back(std::move(r));
      continue;
    }
    const bool degrade = policy->on_missing_kernel_feature == sandbox::MissingFeature::kDegrade;
    r.on_missing = degrade ? "degrade" : "fail";
    if (!launcher.ok()) {
      r.verdict = "unusable";
      r.error = "the sandbox launcher could not start";
      reports.push_back(std::move(r));
      continue;
    }
    auto compiled = (*launcher)->compile(*policy);
    if (!compiled.ok()) {
      r.verdict = "unusable";
      r.error = compiled.status().to_string();
      reports.push_back(std::move(r));
      continue;
    }
    r.missing = (*compiled)->missing_features();
    for (const auto& d : (*compiled)->degradations()) {
      if (!contains(r.missing, d)) r.notes.push_back(d);
    }
    if (r.missing.empty()) {
      r.verdict = "full";
    } else {
      r.verdict = degrade || config.allow_degraded ? "degraded" : "fails_closed";
    }
    reports.push_back(std::move(r));
  }
  return reports;
}

struct DoctorCommand {
  HostOptions host;
  bool json = false;
};

Status run_doctor(const DoctorCommand& c) {
  PIO_ASSIGN_OR_RETURN(host::HostConfig config, host_config_from(c.host, nullptr));
  const sandbox::KernelFeatures f = sandbox::probe();
  const std::vector<std::string> gpus = gpu_device_nodes();
  std::error_code ec;
  const bool worker_found = ::access(config.worker_path.c_str(), X_OK) == 0;
  const bool policies_found = fs::is_directory(config.policy_dir, ec);

  host::PluginRegistry registry;
  std::vector<Status> skipped;
  for (const auto& dir : config.plugin_dirs) {
    host::DiscoveryReport report = registry.load_plugins_from_directory(dir);
    skipped.insert(skipped.end(), report.skipped.begin(), report.skipped.end());
  }
  std::vector<std::string> plugins;
  for (const auto& m : registry.list()) plugins.push_back(m.name);

  std::string launcher_error;
  const std::vector<LevelReport> levels = check_levels(config, f, &launcher_error);

  // What stops the levels in use from running, and what to do about it.
  std::vector<std::string> problems;
  if (!worker_found) {
    problems.push_back(fmt::format("pio-worker not found at {}: pass --worker or set worker_path",
                                   config.worker_path.string()));
  }
  if (!launcher_error.empty()) {
    problems.push_back(
        fmt::format("the sandbox launcher cannot start ({}): give pio a delegated cgroup (systemd "
                    "Delegate=yes, or cgroup_base in the host config)",
                    launcher_error));
  }
  for (const LevelReport& r : levels) {
    if (!r.used || r.can_run()) continue;
    const std::string_view name = sandbox::trust_level_name(r.level);
    if (r.verdict == "fails_closed") {
      problems.push_back(fmt::format(
          "trust level {} fails closed on this kernel (missing: {}): fix the kernel or its "
          "settings, or set allow_degraded in the host config to run it degraded knowingly",
          name, join(r.missing, "; ")));
    } else if (r.on_missing.empty()) {  // its policy did not load
      problems.push_back(
          fmt::format("trust level {}: {}: fix the policy, or pass --policy-dir", name, r.error));
    } else if (launcher_error.empty()) {  // else the launcher's problem says it all
      problems.push_back(fmt::format("trust level {} cannot run: {}", name, r.error));
    }
  }

  if (c.json) {
    ordered_json cgroup_controllers = ordered_json::object();
    for (const char* ctl : kControllers) cgroup_controllers[ctl] = has_controller(f.cgroup, ctl);
    ordered_json level_json = ordered_json::array();
    for (const LevelReport& r : levels) {
      ordered_json l = {{"level", sandbox::trust_level_name(r.level)},
                        {"used", r.used},
                        {"on_missing_kernel_feature", r.on_missing},
                        {"missing", r.missing},
                        {"notes", r.notes},
                        {"verdict", r.verdict}};
      if (!r.error.empty()) l["error"] = r.error;
      level_json.push_back(std::move(l));
    }
    ordered_json skipped_json = ordered_json::array();
    for (const auto& s : skipped) skipped_json.push_back(s.message());
    std::vector<std::string> plugin_dirs;
    for (const auto& d : config.plugin_dirs) plugin_dirs.push_back(d.string());
    const ordered_json doc = {
        {"kernel", f.kernel_release},
        {"seccomp", f.seccomp_filter},
        {"landlock", {{"abi", f.landlock_abi}}},
        {"namespaces",
         {{"user", f.user_namespaces},
          {"pid", f.pid_namespaces},
          {"net", f.net_namespaces},
          {"ipc", f.ipc_namespaces},
          {"mount", f.mount_namespaces},
          {"uts", f.uts_namespaces}}},
        {"pidfd", f.pidfd},
        {"running_as_root", f.running_as_root},
        {"cgroup",
         {{"version", f.cgroup.version},
          {"v2_mount", f.cgroup.v2_mount},
          {"v2_controllers", f.cgroup.v2_controllers},
          {"v1_controllers", f.cgroup.v1_controllers},
          {"controllers", cgroup_controllers}}},
        {"gpu_devices", gpus},
        {"worker", {{"path", config.worker_path.string()}, {"found", worker_found}}},
        {"policy_dir", {{"path", config.policy_dir.string()}, {"found", policies_found}}},
        {"plugin_dirs", plugin_dirs},
        {"plugins", plugins},
        {"skipped", skipped_json},
        {"launcher", launcher_error.empty()
                         ? ordered_json{{"ok", true}}
                         : ordered_json{{"ok", false}, {"error", launcher_error}}},
        {"allow_degraded", config.allow_degraded},
        {"trust_levels", level_json},
        {"ok", problems.empty()},
        {"problems", problems}};
    std::fputs(json_line(doc).c_str(), stdout);
  } else {
    auto yes = [](bool b) { return b ? "yes" : "no"; };
    fmt::print("kernel       {}{}\n", f.kernel_release,
               f.running_as_root ? " (running as root)" : "");
    fmt::print("seccomp      {}\n", yes(f.seccomp_filter));
    fmt::print("landlock     {}\n",
               f.landlock_abi > 0 ? fmt::format("ABI {}", f.landlock_abi) : std::string("no"));
    fmt::print("namespaces   user {}, pid {}, net {}, ipc {}, mount {}, uts {}\n",
               yes(f.user_namespaces), yes(f.pid_namespaces), yes(f.net_namespaces),
               yes(f.ipc_namespaces), yes(f.mount_namespaces), yes(f.uts_namespaces));
    fmt::print("pidfd        {}\n", yes(f.pidfd));
    std::string controllers;
    for (const char* ctl : kControllers) {
      controllers += fmt::format("{}{} {}", controllers.empty() ? "" : ", ", ctl,
                                 yes(has_controller(f.cgroup, ctl)));
    }
    fmt::print(
        "cgroup       {} ({}){}\n",
        f.cgroup.version == 0 ? std::string("none writable") : fmt::format("v{}", f.cgroup.version),
        controllers,
        f.cgroup.v2_mount.empty() ? "" : fmt::format("; cgroup2 at {}", f.cgroup.v2_mount));
    fmt::print("gpu devices  {}\n", gpus.empty() ? "none (no /dev/nvidia*)" : join(gpus, " "));
    fmt::print("pio-worker   {} ({})\n", config.worker_path.string(),
               worker_found ? "found" : "NOT FOUND");
    fmt::print("policies     {} ({})\n", config.policy_dir.string(),
               policies_found ? "found" : "NOT FOUND");
    std::vector<std::string> dirs;
    for (const auto& d : config.plugin_dirs) dirs.push_back(d.string());
    fmt::print("plugins      {} in {}\n", plugins.empty() ? "none" : join(plugins, ", "),
               join(dirs, ", "));
    for (const auto& s : skipped) fmt::print("  skipped: {}\n", s.message());
    if (!launcher_error.empty()) fmt::print("launcher     {}\n", launcher_error);
    fmt::print("trust levels (allow_degraded: {}):\n", config.allow_degraded ? "yes" : "no");
    for (const LevelReport& r : levels) {
      std::string verdict;
      if (r.verdict == "full") verdict = "runs, enforced in full";
      if (r.verdict == "degraded") verdict = "runs degraded, missing: " + join(r.missing, "; ");
      if (r.verdict == "fails_closed") verdict = "fails closed, missing: " + join(r.missing, "; ");
      if (r.verdict == "unusable") verdict = "cannot run: " + r.error;
      fmt::print("  {:<8} {:<6} on missing: {:<8} {}\n", sandbox::trust_level_name(r.level),
                 r.used ? "used" : "", r.on_missing.empty() ? "?" : r.on_missing, verdict);
      for (const auto& n : r.notes) fmt::print("           note: {}\n", n);
    }
    fmt::print("{}\n", problems.empty()
                           ? "ok: every trust level the config uses can run on this machine"
                           : fmt::format("NOT OK: {} problem(s), each with what to do, on stderr",
                                         problems.size()));
  }
  (void)std::fflush(stdout);
  if (!problems.empty()) return failed_precondition_error(join(problems, "\n  "));
  return ok_status();
}

}  // namespace

void add_doctor_command(CLI::App& app, std::vector<Command>* commands) {
  CLI::App* sub =
      app.add_subcommand("doctor", "Check which trust levels this machine's sandbox can run");
  sub->footer(
      "Reports the kernel's sandbox features (seccomp, landlock, namespaces, cgroup controllers), "
      "pio-worker, the policies, the plugins and the GPU device nodes, and for each trust level "
      "what its policy needs that is missing and whether it fails closed or runs degraded. Exit 0 "
      "when every trust level the config uses can run, 2 otherwise (stderr says what to do).");
  auto c = std::make_shared<DoctorCommand>();
  add_host_options(sub, &c->host);
  sub->add_flag("--json", c->json, "Print one JSON document instead of the report");
  commands->push_back({sub, [c] { return run_doctor(*c); }});
}

}  // namespace pio::cli
