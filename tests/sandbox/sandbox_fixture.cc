// SandboxTest: see sandbox_fixture.h. The Hello is received raw (one recv of one packet) and
// checked with the flatbuffers Verifier; the full control channel lives in ipc/.

#include "sandbox_fixture.h"

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "pio/ipc/messages_generated.h"
#include "pio/ipc/unique_fd.h"

namespace pio::sandbox::testing {
namespace {

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

// Receives one packet within `timeout_ms`; nullopt on timeout or EOF.
std::optional<std::string> recv_packet(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

bool is_hello(const std::string& packet) {
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(packet.data()), packet.size());
  if (!pio::wire::VerifyEnvelopeBuffer(verifier)) return false;
  const auto* env = pio::wire::GetEnvelope(packet.data());
  return env->message_type() == pio::wire::Message::Hello &&
         env->message_as_Hello()->protocol_version() ==
             static_cast<uint32_t>(pio::wire::ProtocolVersion::Current);
}

std::atomic<int> g_instance{0};

std::string read_status(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.starts_with("Name:") || line.starts_with("State:") || line.starts_with("NSpid:")) {
      out += line + "; ";
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> open_fds() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc/self/fd");
  int own = dirfd(d);
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == std::to_string(own)) continue;
    out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

int ProbeRun::failed_errno() const {
  if (!report.starts_with("fail ")) return -1;
  return std::atoi(report.substr(report.rfind(' ') + 1).c_str());
}

void SandboxTest::SetUp() {
  fds_before_ = open_fds();
  char tmpl[] = "/tmp/pio-sandbox-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  root_ = tmpl;
  chmod(root_.c_str(), 0755);
  plugin_dir_ = root_ + "/plugin";
  model_dir_ = root_ + "/model";
  other_model_ = root_ + "/other-model";
  for (const std::string& d : {plugin_dir_, model_dir_, other_model_, root_ + "/scratch"}) {
    mkdir(d.c_str(), 0755);
  }
  write_text(plugin_dir_ + "/plugin.txt", "plugin", 0644);
  write_text(model_dir_ + "/weights.bin", "weights", 0644);
  write_text(other_model_ + "/secret.bin", "secret", 0644);
  probe_path_ = root_ + "/sandbox_probe";
  std::filesystem::copy_file(PIO_SANDBOX_PROBE, probe_path_);
  chmod(probe_path_.c_str(), 0755);
  host_file_ = root_ + "/host-secret.txt";
  write_text(host_file_, "host", 0644);

  tcp_listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(tcp_listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(tcp_listener_, 16), 0);
  socklen_t len = sizeof a;
  getsockname(tcp_listener_, reinterpret_cast<sockaddr*>(&a), &len);
  tcp_port_ = ntohs(a.sin_port);

  unix_socket_ = root_ + "/listener.sock";
  unix_listener_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::snprintf(u.sun_path, sizeof u.sun_path, "%s", unix_socket_.c_str());
  ASSERT_EQ(bind(unix_listener_, reinterpret_cast<sockaddr*>(&u), sizeof u), 0);
  chmod(unix_socket_.c_str(), 0777);
  ASSERT_EQ(listen(unix_listener_, 16), 0);

  LauncherOptions options;
  options.instance_name = "test" + std::to_string(getpid()) + "-" + std::to_string(g_instance++);
  options.scratch_root = root_ + "/scratch";
  // The hierarchy roots, not this process's own cgroup: that one belongs to whoever started us.
  options.cgroup_base = "/";
  io_ = std::make_unique<boost::asio::io_context>();
  auto launcher = WorkerLauncher::create(*io_, options);
  ASSERT_TRUE(launcher.ok()) << launcher.status().to_string();
  launcher_ = std::move(launcher).value();
  cgroup_parents_ = launcher_->cgroup_parent_dirs();
}

void SandboxTest::TearDown() {
  launcher_.reset();
  io_.reset();
  close(tcp_listener_);
  close(unix_listener_);
  // No cgroup dirs left behind: the workers' and the instance's own.
  for (const std::string& dir : cgroup_parents_) {
    EXPECT_FALSE(std::filesystem::exists(dir)) << "leftover cgroup " << dir;
  }
  // No children left, neither running nor zombies.
  siginfo_t info{};
  EXPECT_EQ(waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT), -1);
  EXPECT_EQ(errno, ECHILD) << "a child (pid " << info.si_pid
                           << ") is left: " << read_status(info.si_pid);
  // No fds leaked.
  EXPECT_EQ(open_fds(), fds_before_);
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

Policy SandboxTest::policy(TrustLevel level) const {
  auto p = load_policy(PIO_POLICY_DIR, level);
  PIO_CHECK(p.ok());
  return *p;
}

void SandboxTest::wait_for_exit(const std::shared_ptr<Worker>& worker) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!worker->exited() && std::chrono::steady_clock::now() < deadline) {
    io_->restart();
    io_->run_for(std::chrono::milliseconds(50));
  }
  if (!worker->exited()) {
    ADD_FAILURE() << "worker did not exit in time";
    worker->kill();
    while (!worker->exited()) {
      io_->restart();
      io_->run_for(std::chrono::milliseconds(50));
    }
  }
}

ProbeRun SandboxTest::run_probe(TrustLevel level, std::vector<std::string> args,
                                ProbeOptions options) {
  ProbeRun run;
  Policy p = policy(level);
  if (options.edit_policy) options.edit_policy(p);
  auto compiled = launcher_->compile(p);
  if (!compiled.ok()) {
    run.spawn_status = compiled.status();
    return run;
  }
  int sv[2];
  PIO_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd host_end(sv[0]);
  UniqueFd worker_end(sv[1]);
  UniqueFd arena(memfd_create("pio-test-arena", MFD_CLOEXEC));
  PIO_CHECK(ftruncate(arena.get(), 1 << 20) == 0);

  SpawnRequest request;
  request.worker_path = probe_path_;
  const std::string request_args_front = args.empty() ? "" : args.front();
  request.args = std::move(args);
  request.plugin_dir = plugin_dir_;
  request.model_dirs = {model_dir_};
  request.control_fd = worker_end.get();
  request.arena_fd = arena.get();
  if (options.edit_request) options.edit_request(request);
  auto worker = launcher_->spawn(**compiled, std::move(request));
  worker_end.reset();
  arena.reset();
  if (!worker.ok()) {
    run.spawn_status = worker.status();
    return run;
  }
  run.worker = *worker;
  if (auto hello = recv_packet(host_end.get(), 20000)) run.hello = is_hello(*hello);
  // "sleep" never reports; everything else reports or dies (EOF).
  if (run.hello && run.worker != nullptr && request_args_front != "sleep") {
    if (auto report = recv_packet(host_end.get(), 30000)) run.report = *report;
  }
  if (options.wait_for_exit) {
    wait_for_exit(run.worker);
    run.exit = run.worker->exit_info();
  }
  return run;
}

}  // namespace pio::sandbox::testing
