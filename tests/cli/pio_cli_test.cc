// The pio command line seen from outside: each test runs build/bin/pio as a child process with
// its stdin from a file, and checks stdout, stderr and the exit code (pio_cli_fixture.h).

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pio_cli_fixture.h"

namespace {

namespace fs = std::filesystem;
using ::pio::cli_test::PioCli;
using ::pio::cli_test::PioRun;
using ::testing::HasSubstr;

TEST_F(PioCli, ListShowsTheEchoPluginWithItsVersionAndFamily) {
  PioRun run = pio(with(host_args(), {"list"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("echo"));
  EXPECT_THAT(run.out, HasSubstr("0.1.0"));
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("skipped")));
}

TEST_F(PioCli, ListWithoutOptionsFindsTheBuildTreesPlugins) {
  PioRun run = pio({"list"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("echo"));
}

TEST_F(PioCli, ListNamesAPluginFolderItSkippedAndWhy) {
  fs::create_directories(root_ / "plugins" / "broken");
  std::ofstream(root_ / "plugins" / "broken" / "plugin_manifest.json") << "{\"name\": 5}";
  PioRun run = pio(with(host_args(), {"list"}));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("skipped: "));
  EXPECT_THAT(run.out, HasSubstr("broken"));
}

TEST_F(PioCli, GenerateStreamsTheEchoedPromptThenANewline) {
  auto args = with(echo_args(), {"generate"});
  args.push_back("hello");
  PioRun run = pio(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "hello\n");
  EXPECT_THAT(run.err, HasSubstr("ready in"));
}

TEST_F(PioCli, GenerateStripsTerminalEscapesFromTheStreamedText) {
  // Echo streams the prompt back: ESC (a CSI clearing the screen, an OSC retitling the window),
  // BEL, a carriage return and the C1 control CSI (U+009B) would reach the terminal as they are.
  auto args = with(echo_args(), {"generate"});
  args.push_back(std::string("\x1b[2Jclear \x1b]0;title\x07 back\r \xc2\x9b") +
                 "31m c1, tab\tand caf\xc3\xa9");
  PioRun run = pio(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "[2Jclear ]0;title back 31m c1, tab\tand caf\xc3\xa9\n");
}

TEST_F(PioCli, GenerateJsonPrintsOneLineWithTextIdsAndCounts) {
  auto args = with(echo_args(), {"generate", "--json", "--max-tokens", "2"});
  args.push_back("abc");
  PioRun run = pio(args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out,
            "{\"text\":\"ab\",\"token_ids\":[97,98],\"finish_reason\":\"length\","
            "\"prompt_tokens\":3,\"completion_tokens\":2}\n");
}

TEST_F(PioCli, TokenizeJsonlGivesEchosCodePointsOneLinePerInput) {
  PioRun run = pio(with(echo_args(), {"tokenize", "--jsonl"}),
                   "{\"text\": \"hi\"}\n\n{\"text\": \"\xc3\xa9\"}\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"ids\":[104,105]}\n{\"ids\":[233]}\n");
}

TEST_F(PioCli, TokenizeWithoutJsonlTakesAllOfStdinAsOneText) {
  PioRun run = pio(with(echo_args(), {"tokenize"}), "a\nb");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"ids\":[97,10,98]}\n");
}

TEST_F(PioCli, TokenizeALineThatIsNotJsonExitsOneNamingTheLine) {
  PioRun run = pio(with(echo_args(), {"tokenize", "--jsonl"}), "{\"text\": \"a\"}\nnot json\n");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "{\"ids\":[97]}\n");
  EXPECT_THAT(run.err, HasSubstr("pio tokenize: "));
  EXPECT_THAT(run.err, HasSubstr("line 2"));
}

TEST_F(PioCli, ChatAnswersEachLineUntilExit) {
  PioRun run = pio(with(echo_args(), {"chat", "--system", "be brief", "--no-thinking"}),
                   "first\nsecond\n/exit\nnever read\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "first\nsecond\n");  // echo answers with the last user message
}

TEST_F(PioCli, RenderChatOnAPluginWithoutATemplateExitsTwoWithNotFound) {
  PioRun run = pio(with(echo_args(), {"render-chat"}),
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("pio render-chat: not_found"));
  EXPECT_THAT(run.err, HasSubstr("render_chat"));
}

TEST_F(PioCli, CtrlCDuringGenerateCancelsItKeepsWhatWasStreamedAndExits130) {
  const fs::path config = root_ / "slow.json";
  std::ofstream(config) << R"({"plugins": {"echo": {"config": {"token_delay_ms": 50}}}})";
  auto args = with(echo_args(), {"generate", "--config", config.string()});
  const std::string prompt(200, 'x');  // 10 s at 50 ms a token: far longer than the test waits
  args.push_back(prompt);
  PioRun run = pio(args, "", /*interrupt_after_output=*/true);
  EXPECT_EQ(run.exit_code, 130) << run.err;
  EXPECT_THAT(run.err, HasSubstr("pio generate: cancelled"));
  ASSERT_FALSE(run.out.empty());
  EXPECT_LT(run.out.size(), prompt.size());
  EXPECT_EQ(run.out.back(), '\n');
}

TEST_F(PioCli, AnUnknownOptionExitsOneAndNamesIt) {
  auto args = with(echo_args(), {"generate", "--no-such-option"});
  args.push_back("hi");
  PioRun run = pio(args);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("pio generate: "));
  EXPECT_THAT(run.err, HasSubstr("--no-such-option"));
  EXPECT_EQ(run.out, "");
}

TEST_F(PioCli, AMissingSubcommandExitsOne) {
  PioRun run = pio({});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("pio: "));
}

TEST_F(PioCli, HelpOfASubcommandExitsZeroAndListsItsOptions) {
  PioRun run = pio({"generate", "--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("--max-tokens"));
  EXPECT_THAT(run.out, HasSubstr("--plugin-dir"));
}

TEST_F(PioCli, AModelDirThatDoesNotExistExitsTwoNamingThePath) {
  const std::string missing = (root_ / "models" / "no-such-model").string();
  auto args = with(host_args(), {"generate", "--plugin", "echo", "--model", missing, "hi"});
  PioRun run = pio(args);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("pio generate: "));
  EXPECT_THAT(run.err, HasSubstr(missing));
}

TEST_F(PioCli, AnUnknownPluginExitsTwoNamingItAndTheFoldersSearched) {
  auto args = with(host_args(), {"tokenize", "--plugin", "nope", "--model", model_dir().string()});
  PioRun run = pio(args);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("\"nope\""));
  EXPECT_THAT(run.err, HasSubstr((root_ / "plugins").string()));
}

}  // namespace
