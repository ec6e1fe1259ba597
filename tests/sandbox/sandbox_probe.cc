// sandbox_probe: the stand-in worker the sandbox tests and bench_spawn start. Like pio-worker it
// maps the arena, closes the arena fd, applies stage 2, says Hello on fd 3; then it makes the
// one attempt named by argv[1] and reports "ok" or "fail <what> <errno>" in a second packet
// (or dies trying, which the test reads from the exit classification).

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pio/ipc/messages_generated.h"
#include "pio/sandbox/worker_side.h"

extern char** environ;

namespace {

using pio::sandbox::kArenaFd;
using pio::sandbox::kControlFd;

void send_packet(const void* data, size_t size) {
  if (send(kControlFd, data, size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) _exit(91);
}

void report(const std::string& text) { send_packet(text.data(), text.size()); }

void report_result(const char* what, long rc) {
  if (rc < 0) {
    report(std::string("fail ") + what + " " + std::to_string(errno));
  } else {
    report("ok");
  }
}

void send_hello() {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto hello = pio::wire::CreateHello(
      fbb, static_cast<uint32_t>(pio::wire::ProtocolVersion::Current), getpid(),
      fbb.CreateString("sandbox_probe"), fbb.CreateString("probe"), 1);
  auto env = pio::wire::CreateEnvelope(fbb, 0, pio::wire::Message::Hello, hello.Union());
  pio::wire::FinishEnvelopeBuffer(fbb, env);
  send_packet(fbb.GetBufferPointer(), fbb.GetSize());
}

long connect_inet(int family, int port) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) {
    report_result("socket", -1);
    return 0;
  }
  int rc;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a.sin6_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  report_result("connect", rc);
  return 0;
}

int run(const std::vector<std::string>& args, void* arena, size_t arena_size) {
  const std::string& what = args.at(0);
  auto arg = [&](size_t i) { return args.at(i); };
  auto num = [&](size_t i) { return std::strtol(args.at(i).c_str(), nullptr, 0); };

  if (what == "hello") return 0;
  if (what == "exit") return static_cast<int>(num(1));
  if (what == "sleep") {
    for (;;) pause();
  }
  if (what == "socket_inet") return connect_inet(AF_INET, static_cast<int>(num(1)));
  if (what == "socket_inet6") return connect_inet(AF_INET6, static_cast<int>(num(1)));
  if (what == "socket_netlink") {
    report_result("socket", socket(AF_NETLINK, SOCK_RAW, 0));
    return 0;
  }
  if (what == "socket_unix") {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
      report_result("socket", -1);
      return 0;
    }
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", arg(1).c_str());
    report_result("connect", connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    return 0;
  }
  if (what == "read_file") {
    int fd = open(arg(1).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      report_result("open", -1);
      return 0;
    }
    char c;
    report_result("read", read(fd, &c, 1));
    return 0;
  }
  if (what == "stat") {
    struct stat st {};
    report_result("stat", stat(arg(1).c_str(), &st));
    return 0;
  }
  if (what == "readlink") {
    char target[256];
    report_result("readlink", readlink(arg(1).c_str(), target, sizeof target));
    return 0;
  }
  if (what == "list_dir") {
    report_result("open", open(arg(1).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return 0;
  }
  if (what == "write_file") {
    int fd = open(arg(1).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      report_result("open", -1);
      return 0;
    }
    report_result("write", write(fd, "x", 1));
    return 0;
  }
  if (what == "open_device") {
    report_result("open", open(arg(1).c_str(), O_RDWR | O_CLOEXEC));
    return 0;
  }
  if (what == "exec_sh") {
    char sh[] = "/bin/sh";
    char c[] = "-c";
    char cmd[] = "exit 0";
    char* argv[] = {sh, c, cmd, nullptr};
    char* envp[] = {nullptr};
    execve(sh, argv, envp);
    report_result("execve", -1);
    return 0;
  }
  if (what == "ptrace") {
    report_result("ptrace", ptrace(PTRACE_ATTACH, static_cast<pid_t>(num(1)), nullptr, nullptr));
    return 0;
  }
  if (what == "kill") {
    report_result("kill", kill(static_cast<pid_t>(num(1)), 0));
    return 0;
  }
  if (what == "process_vm_readv") {
    char buf[8];
    iovec local{buf, sizeof buf};
    iovec remote{reinterpret_cast<void*>(num(2)), sizeof buf};
    report_result("process_vm_readv",
                  process_vm_readv(static_cast<pid_t>(num(1)), &local, 1, &remote, 1, 0));
    return 0;
  }
  if (what == "mount") {
    report_result("mount", mount("none", "/tmp", "tmpfs", 0, nullptr));
    return 0;
  }
  if (what == "unshare") {
    report_result("unshare", unshare(CLONE_NEWNS));
    return 0;
  }
  if (what == "setns") {
    report_result("setns", setns(kControlFd, CLONE_NEWNET));
    return 0;
  }
  if (what == "chroot") {
    report_result("chroot", chroot("."));
    return 0;
  }
  if (what == "pivot_root") {
    report_result("pivot_root", syscall(SYS_pivot_root, ".", "."));
    return 0;
  }
  if (what == "bpf") {
    bpf_attr attr{};
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    report_result("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    return 0;
  }
  if (what == "perf_event_open") {
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    report_result("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    return 0;
  }
  if (what == "userfaultfd") {
    report_result("userfaultfd", syscall(SYS_userfaultfd, 0));
    return 0;
  }
  if (what == "io_uring_setup") {
    io_uring_params params{};
    report_result("io_uring_setup", syscall(SYS_io_uring_setup, 4, &params));
    return 0;
  }
  if (what == "keyctl") {
    report_result("keyctl", syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3, 0));
    return 0;
  }
  if (what == "add_key") {
    report_result("add_key", syscall(SYS_add_key, "user", "pio-probe", "x", 1, -2));
    return 0;
  }
  if (what == "tiocsti" || what == "tiocsti_high") {
    char c = 'x';
    unsigned long request = TIOCSTI;
    if (what == "tiocsti_high") request |= 1ul << 32;
    report_result("ioctl", syscall(SYS_ioctl, 0, request, &c));
    return 0;
  }
  if (what == "memfd_exec") {
    int fd = static_cast<int>(syscall(SYS_memfd_create, "probe", 0));
    if (fd < 0) {
      report_result("memfd_create", -1);
      return 0;
    }
    if (write(fd, "\xc3", 1) != 1 || ftruncate(fd, 4096) != 0) _exit(92);
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    report_result("mmap", p == MAP_FAILED ? -1 : 0);
    return 0;
  }
  if (what == "arena_exec") {
    if (arena == nullptr) _exit(93);
    report_result("mprotect", mprotect(arena, arena_size, PROT_READ | PROT_EXEC));
    return 0;
  }
  if (what == "scratch_exec") {
    int fd = open("code.bin", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
    if (fd < 0) {
      report_result("open", -1);
      return 0;
    }
    if (write(fd, "\xc3", 1) != 1 || ftruncate(fd, 4096) != 0) _exit(92);
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    report_result("mmap", p == MAP_FAILED ? -1 : 0);
    return 0;
  }
  if (what == "anon_wx") {
    void* p =
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report_result("mmap", p == MAP_FAILED ? -1 : 0);
    return 0;
  }
  if (what == "clone_newnet") {
    long pid = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(static_cast<pid_t>(pid), nullptr, 0);
    report_result("clone", pid);
    return 0;
  }
  if (what == "setuid") {
    report_result("setuid", setuid(0));
    return 0;
  }
  if (what == "raise_rlimit") {
    rlimit r{};
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max = r.rlim_max + 1;
    report_result("setrlimit", setrlimit(RLIMIT_NOFILE, &r));
    return 0;
  }
  if (what == "fork_bomb") {
    for (;;) {
      pid_t pid = fork();
      if (pid == 0) {
        for (;;) pause();
      }
      if (pid < 0) {
        report_result("fork", -1);
        return 3;
      }
    }
  }
  if (what == "memory_bomb") {
    const size_t chunk = 16u << 20;
    for (long i = 0; i < num(1) / 16; ++i) {
      char* p = static_cast<char*>(
          mmap(nullptr, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (p == MAP_FAILED) {
        report_result("mmap", -1);
        return 4;
      }
      std::memset(p, 1, chunk);
    }
    report("ok");
    return 0;
  }
  if (what == "cpu_spin") {
    volatile unsigned long n = 0;
    for (;;) n = n + 1;
  }
  if (what == "fsize") {
    signal(SIGXFSZ, SIG_IGN);
    int fd = open("big.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      report_result("open", -1);
      return 0;
    }
    static char block[65536];
    for (long written = 0; written <= num(1); written += static_cast<long>(sizeof block)) {
      if (write(fd, block, sizeof block) < 0) {
        report_result("write", -1);
        return 0;
      }
    }
    report("ok");
    return 0;
  }
  if (what == "getuid") {
    report(std::to_string(getuid()));
    return 0;
  }
  if (what == "fds") {
    // Which of 0..63 are open.
    std::string open_fds;
    for (int fd = 0; fd < 64; ++fd) {
      if (fcntl(fd, F_GETFD) >= 0) open_fds += std::to_string(fd) + " ";
    }
    report(open_fds);
    return 0;
  }
  if (what == "environ") {
    report(std::to_string(environ == nullptr ? 0 : [] {
      int n = 0;
      for (char** e = environ; *e != nullptr; ++e) ++n;
      return n;
    }()));
    return 0;
  }
  report("fail unknown_attempt 0");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  void* arena = nullptr;
  size_t arena_size = 0;
  // Like pio-worker: map the arena, then give up the fd before stage 2, so plugin code never
  // holds a writable fd it could map executable.
  if (fcntl(kArenaFd, F_GETFD) >= 0) {
    off_t size = lseek(kArenaFd, 0, SEEK_END);
    if (size > 0) {
      arena_size = static_cast<size_t>(size);
      arena = mmap(nullptr, arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, kArenaFd, 0);
      if (arena == MAP_FAILED) return 94;
    }
    close(kArenaFd);
  }
  if (pio::Status s = pio::sandbox::apply_stage2_filter(); !s.ok()) {
    std::fprintf(stderr, "sandbox_probe: %s\n", s.to_string().c_str());
    return 90;
  }
  send_hello();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return 0;
  return run(args, arena, arena_size);
}
