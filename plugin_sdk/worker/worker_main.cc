// pio-worker: the trusted executable the sandbox execs. It maps the arena, connects the control
// channel, installs the sandbox's stage-2 filter, and only then loads the plugin library: no plugin
// code (not even a static constructor) runs before the sandbox is complete.
//
//   pio-worker [--control-fd N] [--arena-fd N] [--stage2-fd N] [--library-fd N]
//              [--model-root DIR]... PLUGIN.so
//
// With --library-fd the library is loaded from that descriptor (the sealed copy whose sha256 the
// host checked) and PLUGIN.so only names it in messages; without it, from the path.
// Defaults are the descriptors the sandbox's launcher sets up (pio/sandbox/worker_side.h). The
// protocol and the exit codes are in pio/plugin_sdk/worker_protocol.h.

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "internal/worker_loop.h"
#include "internal/worker_services.h"
#include "pio/ipc/envelope.h"
#include "pio/plugin_sdk/plugin_library.h"
#include "pio/sandbox/worker_side.h"

namespace {

using pio::Status;
using pio::sdk::WorkerExitCode;

struct Options {
  int control_fd = pio::sandbox::kControlFd;
  int arena_fd = pio::sandbox::kArenaFd;
  int stage2_fd = pio::sandbox::kStage2FilterFd;
  int library_fd = -1;
  std::vector<std::filesystem::path> model_roots;
  std::string plugin;
};

constexpr const char* kUsage =
    "usage: pio-worker [--control-fd N] [--arena-fd N] [--stage2-fd N] [--library-fd N] "
    "[--model-root DIR]... PLUGIN_LIBRARY\n";

bool parse_fd(std::string_view text, int* out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && *out >= 0;
}

pio::Result<Options> parse_args(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    int* fd_target = arg == "--control-fd"   ? &options.control_fd
                     : arg == "--arena-fd"   ? &options.arena_fd
                     : arg == "--stage2-fd"  ? &options.stage2_fd
                     : arg == "--library-fd" ? &options.library_fd
                                             : nullptr;
    if (fd_target != nullptr) {
      const char* v = value();
      if (v == nullptr || !parse_fd(v, fd_target)) {
        return pio::invalid_argument_error(fmt::format("{} needs a descriptor number", arg));
      }
    } else if (arg == "--model-root") {
      const char* v = value();
      if (v == nullptr) return pio::invalid_argument_error("--model-root needs a directory");
      options.model_roots.emplace_back(v);
    } else if (arg.starts_with("--")) {
      return pio::invalid_argument_error(fmt::format("unknown option {}", arg));
    } else if (options.plugin.empty()) {
      options.plugin = arg;
    } else {
      return pio::invalid_argument_error(fmt::format("a second plugin library \"{}\"", arg));
    }
  }
  if (options.plugin.empty()) return pio::invalid_argument_error("no plugin library given");
  return options;
}

// Start-up failures once the channel works: the host gets the reason as its first message.
int fail(pio::ipc::Channel& channel, WorkerExitCode code, const Status& status) {
  std::fprintf(stderr, "pio-worker: %s\n", status.to_string().c_str());
  flatbuffers::FlatBufferBuilder fbb;
  auto error = pio::wire::CreateError(fbb, pio::ipc::to_wire(status.code()),
                                      fbb.CreateString(status.message()));
  pio::ipc::finish_envelope(fbb, 0, pio::wire::Message::Error, error.Union());
  channel.send(pio::ipc::builder_bytes(fbb), {}, pio::ipc::deadline_after(std::chrono::seconds(5)))
      .ignore();
  return static_cast<int>(code);
}

int fail_early(WorkerExitCode code, const Status& status) {
  std::fprintf(stderr, "pio-worker: %s\n", status.to_string().c_str());
  return static_cast<int>(code);
}

pio::Result<pio::sdk::worker::ModelRoots> open_model_roots(
    const std::vector<std::filesystem::path>& paths) {
  pio::sdk::worker::ModelRoots roots;
  if (paths.empty()) return roots;
  PIO_ASSIGN_OR_RETURN(auto guard, pio::sdk::PathGuard::create(paths));
  for (const auto& root : guard.roots()) {
    pio::UniqueFd fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return pio::errno_status(fmt::format("model root \"{}\"", root.string()), errno);
    roots.fds.push_back(std::move(fd));
  }
  roots.guard = std::move(guard);
  return roots;
}

int run(int argc, char** argv) {
  auto options = parse_args(argc, argv);
  if (!options.ok()) {
    std::fputs(kUsage, stderr);
    return fail_early(WorkerExitCode::kUsage, options.status());
  }
  auto arena = pio::ipc::ShmArena::map_existing(pio::UniqueFd(options->arena_fd), 4096);
  if (!arena.ok()) return fail_early(WorkerExitCode::kArena, arena.status().with_context("arena"));
  auto layout = pio::ipc::ArenaLayout::read_from(*arena);
  if (!layout.ok())
    return fail_early(WorkerExitCode::kArena, layout.status().with_context("arena"));
  auto channel = pio::ipc::Channel::create(pio::UniqueFd(options->control_fd), *arena, *layout,
                                           pio::ipc::ChannelSide::kWorker);
  if (!channel.ok()) {
    return fail_early(WorkerExitCode::kChannel, channel.status().with_context("control channel"));
  }
  auto ring = pio::ipc::ShmRing::create(layout->ring_worker_to_host().offset,
                                        layout->ring_worker_to_host().size);
  if (!ring.ok())
    return fail(*channel, WorkerExitCode::kArena, ring.status().with_context("arena"));
  // The arena stays mapped, but its descriptor must not survive into plugin code (a writable
  // memfd could be mapped executable).
  arena->close_fd();
  auto roots = open_model_roots(options->model_roots);
  if (!roots.ok()) return fail(*channel, WorkerExitCode::kUsage, roots.status());

  if (Status s = pio::sandbox::apply_stage2_filter(options->stage2_fd); !s.ok()) {
    return fail(*channel, WorkerExitCode::kSandbox, s);
  }

  // From here on plugin code runs (static constructors included), under the complete sandbox.
  auto library = options->library_fd >= 0 ? pio::sdk::PluginLibrary::open_descriptor(
                                                options->library_fd, options->plugin)
                                          : pio::sdk::PluginLibrary::open(options->plugin);
  // The mapping stays; the descriptor is not left to plugin code.
  if (options->library_fd >= 0) close(options->library_fd);
  if (!library.ok()) return fail(*channel, WorkerExitCode::kPluginLoad, library.status());
  const pio_plugin_api& api = library->api();
  pio_plugin* plugin = nullptr;
  Status created =
      pio::sdk::worker::take_error(api.create(pio::sdk::worker::host_services(), &plugin));
  if (!created.ok() || plugin == nullptr) {
    return fail(*channel, WorkerExitCode::kPluginCreate,
                created.ok() ? pio::internal_error("create succeeded without an instance")
                             : created.with_context(fmt::format("plugin {}: create", api.name)));
  }
  WorkerExitCode code;
  {
    pio::sdk::worker::WorkerLoop loop(*channel, *arena, *layout, api, plugin, std::move(*roots),
                                      std::move(*ring));
    code = loop.run();
  }
  return static_cast<int>(code);
}

}  // namespace

int main(int argc, char** argv) {
  // What escapes (a plugin's C++ exception thrown through the loop, out of memory) still ends the
  // worker as a crash, but the host's crash report quotes what it was from the stderr tail.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pio-worker: uncaught exception: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "pio-worker: uncaught exception of an unknown type\n");
  }
  std::abort();
}
