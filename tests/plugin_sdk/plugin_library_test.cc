#include "pio/plugin_sdk/plugin_library.h"

#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace pio::sdk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The names of the dynamic symbols a library defines, read with nm.
std::vector<std::string> defined_dynamic_symbols(const std::string& library) {
  const std::string command = "nm -D --defined-only --format=posix '" + library + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), &pclose);
  EXPECT_NE(pipe, nullptr);
  std::vector<std::string> names;
  std::array<char, 512> line{};
  while (pipe && std::fgets(line.data(), line.size(), pipe.get()) != nullptr) {
    std::istringstream fields(line.data());
    std::string name;
    fields >> name;
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

TEST(PluginExports, EveryPluginLibraryExportsOnlyItsEntryPoint) {
  for (const char* library :
       {PIO_TEST_ECHO_PLUGIN, PIO_TEST_MINIMAL_PLUGIN, PIO_TEST_THROWING_PLUGIN}) {
    EXPECT_THAT(defined_dynamic_symbols(library), ElementsAre("pio_plugin_entry")) << library;
  }
}

TEST(PluginExports, SdkInternalsAreNotVisibleToDlsym) {
  void* handle = dlopen(PIO_TEST_ECHO_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  EXPECT_NE(dlsym(handle, "pio_plugin_entry"), nullptr);
  // pio::sdk::dtype_size(pio::sdk::DType), linked into every plugin, stays local to it.
  EXPECT_EQ(dlsym(handle, "_ZN3pio3sdk10dtype_sizeENS0_5DTypeE"), nullptr);
  EXPECT_EQ(
      dlsym(handle,
            "_ZN3pio21invalid_argument_errorENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"),
      nullptr);
  dlclose(handle);
}

TEST(PluginLibrary, LoadsEchoAndChecksItsTable) {
  auto library = PluginLibrary::open(PIO_TEST_ECHO_PLUGIN);
  ASSERT_TRUE(library.ok()) << library.status().to_string();
  const pio_plugin_api& api = library->api();
  EXPECT_EQ(api.abi_version, PIO_PLUGIN_ABI_VERSION);
  EXPECT_EQ(api.struct_size, sizeof(pio_plugin_api));
  EXPECT_STREQ(api.name, "echo");
  EXPECT_NE(api.generate_text, nullptr);
  EXPECT_NE(api.chat_completion, nullptr);
}

TEST(PluginLibrary, MinimalIsNotATextModel) {
  auto library = PluginLibrary::open(PIO_TEST_MINIMAL_PLUGIN);
  ASSERT_TRUE(library.ok()) << library.status().to_string();
  EXPECT_EQ(library->api().generate_text, nullptr);
  EXPECT_EQ(library->api().tokenize, nullptr);
}

TEST(PluginLibrary, AnOlderAbiIsRefusedNamingBothVersions) {
  auto library = PluginLibrary::open(PIO_TEST_OLD_ABI_PLUGIN);
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(library.status().message(), HasSubstr("plugin ABI version 0"));
  EXPECT_THAT(library.status().message(),
              HasSubstr("speaks version " + std::to_string(PIO_PLUGIN_ABI_VERSION)));
  EXPECT_THAT(library.status().message(), HasSubstr(PIO_TEST_OLD_ABI_PLUGIN));
}

TEST(PluginLibrary, AnEntryReturningNullIsRefused) {
  auto library = PluginLibrary::open(PIO_TEST_NULL_ENTRY_PLUGIN);
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("returned NULL"));
  EXPECT_THAT(library.status().message(), HasSubstr("rebuild"));
}

TEST(PluginLibrary, AMissingLibraryNamesThePath) {
  auto library = PluginLibrary::open("/nonexistent/libnothing.so");
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(library.status().message(), HasSubstr("/nonexistent/libnothing.so"));
}

TEST(PluginManifest, TheBuiltManifestCarriesTheLibrarysSha256) {
  std::ifstream in(PIO_TEST_ECHO_MANIFEST);
  ASSERT_TRUE(in.good());
  const auto manifest = nlohmann::json::parse(in);
  EXPECT_EQ(manifest.at("name"), "echo");
  EXPECT_EQ(manifest.at("abi_version"), PIO_PLUGIN_ABI_VERSION);
  EXPECT_EQ(manifest.at("library"), "libecho.so");
  const std::string command = std::string("sha256sum '") + PIO_TEST_ECHO_PLUGIN + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), &pclose);
  ASSERT_NE(pipe, nullptr);
  std::array<char, 65> digest{};
  ASSERT_NE(std::fgets(digest.data(), digest.size(), pipe.get()), nullptr);
  EXPECT_EQ(manifest.at("sha256"), std::string(digest.data()));
}

}  // namespace
}  // namespace pio::sdk
