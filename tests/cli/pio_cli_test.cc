// The pio command line seen from outside: each test runs build/bin/pio as a child process with
// its stdin from a file, and checks stdout, stderr and the exit code.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct PioRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class PioCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pio-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    // The worker runs as an unprivileged user-namespace identity: it must be able to read the
    // plugin and the model dir, so both live in a 0755 tree of copies (as tests/host does).
    const fs::path echo = root_ / "plugins" / "echo";
    fs::create_directories(echo);
    fs::create_directories(model_dir());
    fs::copy_file(fs::path(PIO_TEST_ECHO_DIR) / "plugin_manifest.json",
                  echo / "plugin_manifest.json");
    fs::copy_file(fs::path(PIO_TEST_ECHO_DIR) / "libecho.so", echo / "libecho.so");
    for (const auto& entry : fs::recursive_directory_iterator(root_))
      chmod(entry.path().c_str(), 0755);
    chmod(root_.c_str(), 0755);
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  fs::path model_dir() const { return root_ / "models" / "echo"; }

  // The options that point pio at this test's copies instead of the build tree's defaults.
  std::vector<std::string> host_args() const {
    return {"--plugin-dir", (root_ / "plugins").string(), "--worker", PIO_TEST_WORKER_PATH,
            "--policy-dir", PIO_TEST_POLICY_DIR};
  }
  std::vector<std::string> echo_args() const {
    auto args = host_args();
    for (const char* a : {"--plugin", "echo", "--model"}) args.emplace_back(a);
    args.push_back(model_dir().string());
    return args;
  }

  // Runs `pio <args>` with `input` on its stdin and waits for it. With `interrupt_after_output`,
  // sends SIGINT once pio has written something to stdout.
  PioRun pio(const std::vector<std::string>& args, const std::string& input = "",
             bool interrupt_after_output = false) {
    const fs::path in = root_ / "stdin", out = root_ / "stdout", err = root_ / "stderr";
    std::ofstream(in, std::ios::binary) << input;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all = {PIO_TEST_PIO_PATH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    PioRun run;
    const int spawned =
        posix_spawn(&pid, PIO_TEST_PIO_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      ADD_FAILURE() << "posix_spawn " << PIO_TEST_PIO_PATH << ": " << strerror(spawned);
      return run;
    }
    if (interrupt_after_output) {
      for (int i = 0; i < 500 && read_file(out).empty(); ++i) usleep(10'000);
      kill(pid, SIGINT);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
    run.out = read_file(out);
    run.err = read_file(err);
    return run;
  }

  static std::vector<std::string> with(std::vector<std::string> args,
                                       std::initializer_list<std::string> more) {
    std::vector<std::string> all(more);
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  fs::path root_;
};

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
