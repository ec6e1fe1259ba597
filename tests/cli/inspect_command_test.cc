// pio inspect, run as a child process against copies of the echo plugin (pio_cli_fixture.h).

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "pio_cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using ::pio::cli_test::PioCli;
using ::pio::cli_test::PioRun;
using ::pio::cli_test::read_file;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// The manifest's digest, as the build wrote it.
std::string manifest_sha256(const fs::path& plugin_dir) {
  return nlohmann::json::parse(read_file(plugin_dir / "plugin_manifest.json"))["sha256"];
}

TEST_F(PioCli, InspectShowsEchosNameVersionMatchingDigestAndLowTrust) {
  PioRun run = pio(with(host_args(), {"inspect", "echo"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, MatchesRegex("(.|\n)*name +echo\n(.|\n)*"));
  EXPECT_THAT(run.out, MatchesRegex("(.|\n)*version +0\\.1\\.0\n(.|\n)*"));
  EXPECT_THAT(run.out, HasSubstr(manifest_sha256(root_ / "plugins" / "echo")));
  EXPECT_THAT(run.out, MatchesRegex("(.|\n)*digest +matches the library\n(.|\n)*"));
  EXPECT_THAT(run.out, MatchesRegex("(.|\n)*trust_level +low\n(.|\n)*"));
  EXPECT_THAT(run.out, HasSubstr("limit memory"));
}

TEST_F(PioCli, InspectJsonGivesManifestDigestTrustAndTheTighterLimits) {
  const fs::path config = root_ / "config.json";
  std::ofstream(config) << R"({"plugins": {"echo": {"trust_level": "medium",
                               "limits": {"memory_mb": 100}}}})";
  PioRun run = pio(with(host_args(), {"inspect", "echo", "--json", "--config", config.string()}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc["name"], "echo");
  EXPECT_EQ(doc["version"], "0.1.0");
  EXPECT_EQ(doc["digest_matches"], true);
  EXPECT_EQ(doc["sha256"], doc["library_sha256"]);
  EXPECT_EQ(doc["trust_level"], "medium");
  EXPECT_EQ(doc["limits"]["memory"]["config"], 100);
  EXPECT_EQ(doc["limits"]["memory"]["effective"], 100);  // the policy allows more
  EXPECT_EQ(doc["default_config"]["token_delay_ms"], 0);
  EXPECT_FALSE(doc.contains("model_info"));
}

TEST_F(PioCli, InspectOfAModifiedLibraryShowsTheDigestMismatchAndThatTheRegistrySkipsIt) {
  std::ofstream(root_ / "plugins" / "echo" / "libecho.so", std::ios::app | std::ios::binary)
      << '\0';
  PioRun run = pio(with(host_args(), {"inspect", "echo"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("MISMATCH"));
  EXPECT_THAT(run.out, MatchesRegex("(.|\n)*registry +skips it: (.|\n)*"));

  PioRun json = pio(with(host_args(), {"inspect", "echo", "--json"}));
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc["digest_matches"], false);
  EXPECT_NE(doc["sha256"], doc["library_sha256"]);
  EXPECT_EQ(doc["registry"]["loads"], false);
}

TEST_F(PioCli, InspectWithAModelStartsEchoAndPrintsItsModelInfo) {
  PioRun run =
      pio(with(host_args(), {"inspect", "echo", "--json", "--model", model_dir().string()}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto doc = nlohmann::json::parse(run.out);
  ASSERT_TRUE(doc.contains("model_info")) << run.out;
  EXPECT_EQ(doc["model_info"]["name"], "echo");
  EXPECT_EQ(doc["model_info"]["loaded"], true);
  EXPECT_EQ(doc["model_info"]["model_path"], fs::canonical(model_dir()).string());
  EXPECT_EQ(doc["model_roots"][0], fs::canonical(model_dir()).string());
  EXPECT_THAT(run.err, HasSubstr("ready in"));
}

TEST_F(PioCli, InspectOfAnUnknownPluginExitsTwoNamingTheFoldersSearched) {
  PioRun run = pio(with(host_args(), {"inspect", "nope"}));
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("pio inspect: not_found"));
  EXPECT_THAT(run.err, HasSubstr("\"nope\""));
  EXPECT_THAT(run.err, HasSubstr((root_ / "plugins").string()));
}

TEST_F(PioCli, InspectTrustWithoutAModelExitsOne) {
  PioRun run = pio(with(host_args(), {"inspect", "echo", "--trust", "high"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("--model"));
  EXPECT_EQ(run.out, "");
}

TEST_F(PioCli, InspectHelpExitsZeroAndDescribesTheModelOption) {
  PioRun run = pio({"inspect", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("get_model_info"));
  EXPECT_THAT(run.out, HasSubstr("--json"));
}

}  // namespace
