#pragma once
// PioCli: the fixture of the pio command-line tests. It runs build/bin/pio as a child process with
// its stdin from a file and gives back stdout, stderr and the exit code, against copies of the
// echo plugin in a 0755 temp tree.
//
// The one thing a test gets wrong: the worker runs as an unprivileged user-namespace identity, so
// a file a test adds under root_ must be readable by others (chmod 0755, as SetUp does), or the
// worker cannot open it.

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

namespace pio::cli_test {

namespace fs = std::filesystem;

struct PioRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const fs::path& path) {
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

}  // namespace pio::cli_test
