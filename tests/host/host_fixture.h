#pragma once
// HostFixture: a temp dir with copies of the echo plugin and the hostile plugins (readable by the
// workers' own identity), a model root, and a Host configured for tests: low trust, small limits,
// short deadlines and backoff. Each test gets its own Host, cgroup parent and scratch dir.

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pio/host/host.h"

namespace pio::host::testing {

class HostFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Copies a built plugin folder (library + built manifest) to <root>/plugins/<name>.
  std::filesystem::path install_plugin(const std::filesystem::path& built_dir,
                                       const std::string& name);
  std::filesystem::path install_hostile(const std::string& mode);
  // The host config every test starts from; `extra` (JSON object) is merged over it.
  std::string config_json(const std::string& extra = "{}") const;
  // Creates host_ from config_json(extra).
  void make_host(const std::string& extra = "{}");
  // Registers and activates echo (model root <root>/models/echo).
  void activate_echo();
  // echo doubles F32: checks that a fresh request is answered correctly.
  void expect_echo_answers();

  std::filesystem::path root_;
  std::unique_ptr<Host> host_;
};

// Open fds, memfd mappings and child processes of this process, for leak checks.
size_t count_open_fds();
size_t count_memfd_mappings();
size_t count_children();
size_t resident_bytes();

}  // namespace pio::host::testing
