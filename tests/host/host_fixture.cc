#include "host_fixture.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace pio::host::testing {

namespace fs = std::filesystem;

void HostFixture::SetUp() {
  char tmpl[] = "/tmp/pio-host-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  root_ = tmpl;
  fs::create_directories(root_ / "plugins");
  fs::create_directories(root_ / "models" / "echo");
  fs::create_directories(root_ / "outside");
  std::ofstream(root_ / "models" / "echo" / "config.json") << "{}";
  std::ofstream(root_ / "outside" / "secret") << "secret";
  fs::create_symlink(root_ / "outside" / "secret", root_ / "models" / "echo" / "escape");
  install_plugin(PIO_TEST_ECHO_DIR, "echo");
}

void HostFixture::TearDown() {
  host_.reset();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

fs::path HostFixture::install_plugin(const fs::path& built_dir, const std::string& name) {
  const fs::path dir = root_ / "plugins" / name;
  fs::create_directories(dir);
  fs::copy_file(built_dir / "plugin_manifest.json", dir / "plugin_manifest.json",
                fs::copy_options::overwrite_existing);
  fs::copy_file(built_dir / ("lib" + name + ".so"), dir / ("lib" + name + ".so"),
                fs::copy_options::overwrite_existing);
  for (const auto& entry : fs::recursive_directory_iterator(root_))
    chmod(entry.path().c_str(), 0755);
  chmod(root_.c_str(), 0755);
  return dir;
}

fs::path HostFixture::install_hostile(const std::string& mode) {
  const std::string name = "hostile_" + mode;
  return install_plugin(fs::path(PIO_TEST_HOSTILE_DIR) / name, name);
}

std::string HostFixture::config_json(const std::string& extra) const {
  nlohmann::json config = {
      {"policy_dir", PIO_TEST_POLICY_DIR},
      {"worker_path", PIO_TEST_WORKER_PATH},
      {"cgroup_base", "/"},
      {"plugin_dirs", {(root_ / "plugins").string()}},
      {"defaults",
       {{"trust_level", "low"},
        {"request_deadline_ms", 5000},
        {"heartbeat_interval_ms", 200},
        {"start_timeout_ms", 10000},
        {"shutdown_timeout_ms", 1000},
        {"limits", {{"memory_mb", 256}, {"pids", 32}}},
        {"restart",
         {{"max_crashes", 100},
          {"window_ms", 60000},
          {"backoff_initial_ms", 5},
          {"backoff_max_ms", 50}}}}},
      {"plugins", {{"echo", {{"model_roots", {(root_ / "models").string()}}}}}},
  };
  config.merge_patch(nlohmann::json::parse(extra));
  return config.dump();
}

void HostFixture::make_host(const std::string& extra) {
  auto config = parse_host_config(config_json(extra), "test config");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  auto host = Host::create(*config);
  ASSERT_TRUE(host.ok()) << host.status().to_string();
  host_ = std::move(*host);
}

void HostFixture::activate_echo() {
  auto registered = host_->register_plugin(root_ / "plugins" / "echo");
  ASSERT_TRUE(registered.ok()) << registered.status().to_string();
  Status s = host_->activate_plugin("echo");
  ASSERT_TRUE(s.ok()) << s.to_string();
}

void HostFixture::expect_echo_answers() {
  const float x[4] = {1.0f, -2.5f, 3.0f, 0.25f};
  InferRequest request;
  request.inputs.push_back({"x", wire::DType::F32, {4}, std::as_bytes(std::span<const float>(x))});
  auto out = host_->execute_plugin("echo", std::move(request));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ(out->tensors().size(), 1u);
  const auto* y = reinterpret_cast<const float*>(out->tensors()[0].data);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], -5.0f);
  EXPECT_EQ(y[2], 6.0f);
  EXPECT_EQ(y[3], 0.5f);
}

size_t count_open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

size_t count_memfd_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  size_t n = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:") != std::string::npos) ++n;
  }
  return n;
}

size_t count_children() {
  const std::string self = std::to_string(getpid());
  size_t n = 0;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream children(task.path() / "children");
    std::string pid;
    while (children >> pid) ++n;
  }
  return n;
}

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace pio::host::testing
