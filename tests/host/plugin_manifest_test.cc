#include "pio/host/plugin_manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "host_fixture.h"
#include "pio/host/plugin_registry.h"

namespace pio::host {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr const char* kGood = R"({
  "name": "echo", "version": "0.1.0", "abi_version": 1, "library": "libecho.so",
  "sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "description": "d", "model_family": "echo", "default_config": {"token_delay_ms": 0},
  "capabilities": {"gpu": false, "network": false, "scratch_mb": 0},
  "resources": {"memory_mb": 64, "gpu_memory_mb": 0, "disk_mb": 0}})";

TEST(PluginManifest, ParsesEveryFieldOfTheSchema) {
  auto m = parse_manifest(kGood, "m.json");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->name, "echo");
  EXPECT_EQ(m->abi_version, 1u);
  EXPECT_EQ(m->library, "libecho.so");
  EXPECT_EQ(m->default_config_json, R"({"token_delay_ms":0})");
  EXPECT_EQ(m->resources.memory_mb, 64u);
}

TEST(PluginManifest, BadFieldsAreRefusedNamingTheFileAndTheField) {
  struct Case {
    std::string from, to, field;
  };
  const std::vector<Case> cases = {
      {R"("name": "echo")", R"("name": "../echo")", "\"name\""},
      {R"("abi_version": 1)", R"("abi_version": "1")", "\"abi_version\""},
      {R"("library": "libecho.so")", R"("library": "../libc.so")", "\"library\""},
      {R"("sha256": "0123)", R"("sha256": "X123)", "\"sha256\""},
      {R"("gpu": false)", R"("gpu": 0)", "\"capabilities.gpu\""},
      {R"("disk_mb": 0)", R"("disk_mb": -1)", "\"resources.disk_mb\""},
      {R"("model_family": "echo")", R"("model_famly": "echo")", "\"model_famly\": unknown field"},
  };
  for (const auto& c : cases) {
    std::string text = kGood;
    const size_t at = text.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    text.replace(at, c.from.size(), c.to);
    auto m = parse_manifest(text, "/p/x/plugin_manifest.json");
    ASSERT_FALSE(m.ok()) << c.to;
    EXPECT_EQ(m.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("/p/x/plugin_manifest.json")) << c.to;
    EXPECT_THAT(m.status().message(), HasSubstr(c.field)) << c.to;
  }
  EXPECT_FALSE(parse_manifest("{not json", "m.json").ok());
  EXPECT_FALSE(parse_manifest("[]", "m.json").ok());
}

class RegistryTest : public testing::HostFixture {};

TEST_F(RegistryTest, DiscoverySkipsABadManifestAndRefusesALibraryWhoseDigestDiffers) {
  install_hostile("segv_infer");
  const fs::path bad = root_ / "plugins" / "broken";
  fs::create_directories(bad);
  std::ofstream(bad / "plugin_manifest.json") << R"({"name": "broken", "version": 3})";
  const fs::path tampered = install_hostile("spin_infer");
  std::ofstream(tampered / "libhostile_spin_infer.so", std::ios::app) << "tampered";

  PluginRegistry registry;
  DiscoveryReport report = registry.load_plugins_from_directory(root_ / "plugins");
  EXPECT_THAT(report.loaded, ::testing::UnorderedElementsAre("echo", "hostile_segv_infer"));
  ASSERT_EQ(report.skipped.size(), 2u);
  std::string messages;
  for (const auto& s : report.skipped) messages += s.to_string() + "\n";
  EXPECT_THAT(messages, HasSubstr((bad / "plugin_manifest.json").string()));
  EXPECT_THAT(messages, HasSubstr("field \"version\""));
  EXPECT_THAT(messages, HasSubstr("permission_denied"));
  EXPECT_THAT(messages, HasSubstr("libhostile_spin_infer.so has sha256"));
  EXPECT_FALSE(registry.find("hostile_spin_infer").ok());
  EXPECT_EQ(registry.list().size(), 2u);
}

TEST_F(RegistryTest, ALibraryChangedAfterRegistrationIsRefusedAtActivation) {
  make_host();
  ASSERT_FALSE(HasFailure());
  const fs::path dir = install_hostile("segv_infer");
  ASSERT_TRUE(host_->register_plugin(dir).ok());
  std::ofstream(dir / "libhostile_segv_infer.so", std::ios::app) << "x";
  Status s = host_->activate_plugin("hostile_segv_infer");
  EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied) << s.to_string();
}

}  // namespace
}  // namespace pio::host
