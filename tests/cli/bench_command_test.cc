// pio bench, run as a child process on the echo plugin (pio_cli_fixture.h). Echo streams the
// prompt back one character a token, so any prompt of more than --new-tokens characters gives the
// full number of tokens to time.

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "pio_cli_fixture.h"

namespace {

using ::pio::cli_test::PioCli;
using ::pio::cli_test::PioRun;
using ::testing::HasSubstr;

TEST_F(PioCli, BenchOnEchoPrintsMedianPrefillAndAPositiveDecodeRate) {
  PioRun run = pio(with(echo_args(), {"bench", "--new-tokens", "8", "--prompt-tokens", "16"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("prefill"));
  std::smatch decode;
  ASSERT_TRUE(std::regex_search(run.out, decode, std::regex("decode +([0-9.]+) tokens/s")))
      << run.out;
  EXPECT_GT(std::stod(decode[1]), 0);
  EXPECT_THAT(run.err, HasSubstr("run 3/3"));
}

TEST_F(PioCli, BenchJsonGivesOneLineWithEachRunAndTheMedians) {
  PioRun run = pio(with(echo_args(), {"bench", "--json", "--new-tokens", "8", "--runs", "2"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(run.out.find('\n'), run.out.size() - 1) << run.out;
  const auto doc = nlohmann::json::parse(run.out);
  EXPECT_EQ(doc["plugin"], "echo");
  ASSERT_EQ(doc["runs"].size(), 2u);
  for (const auto& r : doc["runs"]) EXPECT_EQ(r["completion_tokens"], 8);
  EXPECT_GT(doc["median_decode_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(doc["median_prefill_ms"].get<double>(), 0);
  EXPECT_EQ(doc["total_tokens"], 16);
  EXPECT_GT(doc["prompt_tokens"].get<int>(), 8);  // echo: one token a character
}

TEST_F(PioCli, BenchWithOneNewTokenExitsOneSinceNothingIsLeftToTimeTheDecodeBy) {
  PioRun run = pio(with(echo_args(), {"bench", "--new-tokens", "1"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("pio bench: "));
  EXPECT_THAT(run.err, HasSubstr("--new-tokens"));
  EXPECT_EQ(run.out, "");
}

TEST_F(PioCli, BenchWithoutAModelExitsOne) {
  PioRun run = pio(with(host_args(), {"bench", "--plugin", "echo"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("--model"));
}

TEST_F(PioCli, BenchHelpSaysItIsAQuickCheckAndPointsAtTheRealBenchmarks) {
  PioRun run = pio({"bench", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("scripts/bench.sh"));
  EXPECT_THAT(run.out, HasSubstr("--new-tokens"));
}

}  // namespace
