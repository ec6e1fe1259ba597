// pio-worker inside the real low-trust sandbox (WorkerLauncher, the shipped policies/low.json):
// the worker's own needs (threads, the arena, openat2, dlopen after stage 2) fit the policy, and
// the echo plugin answers through it. The host's supervision and the hostile plugins are tested
// with the host; this is the worker's side of that contract.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "pio/ipc/arena_layout.h"
#include "pio/ipc/channel.h"
#include "pio/ipc/envelope.h"
#include "pio/ipc/shm_ring.h"
#include "pio/ipc/socket_packet.h"
#include "pio/ipc/tensor_view.h"
#include "pio/plugin_sdk/worker_protocol.h"
#include "pio/sandbox/launcher.h"
#include "pio/sandbox/policy.h"

namespace pio::sdk {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class SandboxedWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pio-sdk-sandbox-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    chmod(root_.c_str(), 0755);
    for (const char* d : {"plugin", "models/echo", "outside", "scratch"}) {
      fs::create_directories(root_ / d);
    }
    for (const auto& entry : fs::recursive_directory_iterator(root_)) {
      chmod(entry.path().c_str(), 0755);
    }
    std::ofstream(root_ / "models" / "echo" / "config.json") << "{}";
    std::ofstream(root_ / "outside" / "secret") << "s";
    fs::create_symlink(root_ / "outside" / "secret", root_ / "models" / "echo" / "escape");

    sandbox::LauncherOptions options;
    options.instance_name = "sdktest" + std::to_string(getpid());
    options.scratch_root = root_ / "scratch";
    options.cgroup_base = "/";
    io_.emplace();
    auto launcher = sandbox::WorkerLauncher::create(*io_, options);
    ASSERT_TRUE(launcher.ok()) << launcher.status().to_string();
    launcher_ = std::move(launcher).value();
  }

  void TearDown() override {
    worker_.reset();
    launcher_.reset();
    io_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Spawns pio-worker with `plugin` (copied into the plugin dir) under the low-trust policy.
  void spawn(const fs::path& plugin = PIO_TEST_ECHO_PLUGIN) {
    const fs::path library = root_ / "plugin" / plugin.filename();
    fs::copy_file(plugin, library, fs::copy_options::overwrite_existing);
    auto policy = sandbox::load_policy(PIO_TEST_POLICY_DIR, sandbox::TrustLevel::kLow);
    ASSERT_TRUE(policy.ok()) << policy.status().to_string();
    auto compiled = launcher_->compile(*policy);
    ASSERT_TRUE(compiled.ok()) << compiled.status().to_string();
    ipc::ArenaConfig config;
    config.lane_slots = 16;
    config.lane_slot_bytes = 1024;
    config.host_to_worker_ring_bytes = 1 << 20;
    config.worker_to_host_ring_bytes = 1 << 20;
    auto layout = ipc::ArenaLayout::compute(config);
    ASSERT_TRUE(layout.ok());
    layout_ = *layout;
    auto arena = ipc::ShmArena::create("pio-sdk-sandbox-arena", layout->total_size());
    ASSERT_TRUE(arena.ok());
    arena_.emplace(std::move(*arena));
    ipc::Channel::prepare_arena(*arena_, *layout_);
    auto sockets = ipc::make_packet_socketpair();
    ASSERT_TRUE(sockets.ok());

    sandbox::SpawnRequest request;
    request.worker_path = PIO_TEST_WORKER_PATH;
    request.args = {"--model-root", (root_ / "models").string(), library.string()};
    request.plugin_dir = root_ / "plugin";
    request.model_dirs = {root_ / "models"};
    request.control_fd = sockets->second.get();
    request.arena_fd = arena_->fd();
    request.log_fd = STDERR_FILENO;
    request.on_exit = [this](const sandbox::WorkerExit& exit) { exit_ = exit; };
    auto worker = launcher_->spawn(**compiled, std::move(request));
    ASSERT_TRUE(worker.ok()) << worker.status().to_string();
    worker_ = *worker;
    sockets->second.reset();
    auto channel =
        ipc::Channel::create(std::move(sockets->first), *arena_, *layout_, ipc::ChannelSide::kHost);
    ASSERT_TRUE(channel.ok());
    channel_.emplace(std::move(*channel));
  }

  ipc::InboundMessage& receive() {
    Status s = channel_->receive(&in_, ipc::deadline_after(std::chrono::seconds(20)));
    EXPECT_TRUE(s.ok()) << s.to_string();
    return in_;
  }

  void send(flatbuffers::FlatBufferBuilder& fbb) {
    ASSERT_TRUE(
        channel_->send(ipc::builder_bytes(fbb), {}, ipc::deadline_after(std::chrono::seconds(10)))
            .ok());
  }

  void wait_for_exit() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!exit_.has_value() && std::chrono::steady_clock::now() < deadline) {
      io_->restart();
      io_->run_for(std::chrono::milliseconds(20));
    }
  }

  fs::path root_;
  std::optional<boost::asio::io_context> io_;
  std::unique_ptr<sandbox::WorkerLauncher> launcher_;
  std::optional<ipc::ArenaLayout> layout_;
  std::optional<ipc::ShmArena> arena_;
  std::optional<ipc::Channel> channel_;
  std::shared_ptr<sandbox::Worker> worker_;
  std::optional<sandbox::WorkerExit> exit_;
  ipc::InboundMessage in_;
};

TEST_F(SandboxedWorkerTest, EchoServesUnderTheLowTrustPolicyAndExitsCleanly) {
  spawn();
  ASSERT_FALSE(HasFailure());

  ipc::InboundMessage& hello = receive();
  ASSERT_EQ(hello.type(), wire::Message::Hello) << ipc::message_type_name(hello.type());
  EXPECT_EQ(hello.envelope().message_as_Hello()->plugin_name()->str(), "echo");

  {  // Initialize
    flatbuffers::FlatBufferBuilder fbb;
    ipc::finish_envelope(fbb, 1, wire::Message::Initialize,
                         wire::CreateInitializeDirect(fbb, "{}").Union());
    send(fbb);
    ASSERT_EQ(receive().type(), wire::Message::Result);
  }
  {  // Infer on a tensor in the host->worker ring
    auto ring = ipc::ShmRing::create(layout_->ring_host_to_worker().offset,
                                     layout_->ring_host_to_worker().size);
    ASSERT_TRUE(ring.ok());
    const float x[3] = {1.5f, -2.0f, 4.0f};
    auto slot = ring->allocate(sizeof(x));
    ASSERT_TRUE(slot.ok());
    std::memcpy(arena_->data() + slot->offset, x, sizeof(x));
    flatbuffers::FlatBufferBuilder fbb;
    const int64_t shape[] = {3};
    auto desc =
        ipc::build_tensor_desc(fbb, "x", wire::DType::F32, shape, wire::Ring::HostToWorker, *slot);
    ASSERT_TRUE(desc.ok());
    std::vector<flatbuffers::Offset<wire::TensorDesc>> inputs = {*desc};
    ipc::finish_envelope(fbb, 2, wire::Message::Infer,
                         wire::CreateInferDirect(fbb, &inputs).Union());
    send(fbb);
    ipc::InboundMessage& result = receive();
    ASSERT_EQ(result.type(), wire::Message::Result);
    const auto* outputs = result.envelope().message_as_Result()->outputs();
    ASSERT_NE(outputs, nullptr);
    auto view = ipc::validate_tensor_desc(outputs->Get(0), wire::Ring::WorkerToHost,
                                          {arena_->data(), layout_->ring_worker_to_host().offset,
                                           layout_->ring_worker_to_host().size});
    ASSERT_TRUE(view.ok()) << view.status().to_string();
    const auto* y = reinterpret_cast<const float*>(view->data);
    EXPECT_EQ(y[0], 3.0f);
    EXPECT_EQ(y[1], -4.0f);
    EXPECT_EQ(y[2], 8.0f);
  }
  {  // A streamed generation
    flatbuffers::FlatBufferBuilder fbb;
    auto params = wire::CreateSamplingParamsDirect(fbb, 100);
    ipc::finish_envelope(
        fbb, 3, wire::Message::Generate,
        wire::CreateGenerateDirect(fbb, "sandboxed", nullptr, nullptr, params).Union());
    send(fbb);
    std::string text;
    for (;;) {
      ipc::InboundMessage& chunk = receive();
      ASSERT_EQ(chunk.type(), wire::Message::TokenChunk);
      const auto* c = chunk.envelope().message_as_TokenChunk();
      if (c->text()) text += c->text()->str();
      if (c->finish_reason() != wire::FinishReason::None) {
        EXPECT_EQ(c->finish_reason(), wire::FinishReason::Stop);
        break;
      }
    }
    EXPECT_EQ(text, "sandboxed");
  }
  {  // load_model: inside the root is opened, a symlink out of it is refused by openat2
    flatbuffers::FlatBufferBuilder fbb;
    const std::string good = (root_ / "models" / "echo").string();
    ipc::finish_envelope(fbb, 4, wire::Message::LoadModel,
                         wire::CreateLoadModelDirect(fbb, good.c_str()).Union());
    send(fbb);
    ipc::InboundMessage& reply = receive();
    ASSERT_EQ(reply.type(), wire::Message::Result)
        << (reply.type() == wire::Message::Error
                ? reply.envelope().message_as_Error()->message()->str()
                : "");
    flatbuffers::FlatBufferBuilder bad_fbb;
    const std::string bad = (root_ / "models" / "echo" / "escape").string();
    ipc::finish_envelope(bad_fbb, 5, wire::Message::LoadModel,
                         wire::CreateLoadModelDirect(bad_fbb, bad.c_str()).Union());
    send(bad_fbb);
    ipc::InboundMessage& refused = receive();
    ASSERT_EQ(refused.type(), wire::Message::Error);
    EXPECT_EQ(ipc::from_wire(refused.envelope().message_as_Error()->code()),
              ErrorCode::kPermissionDenied);
    EXPECT_THAT(refused.envelope().message_as_Error()->message()->str(), HasSubstr(bad));
  }
  {  // Shutdown: an answer, then a clean exit
    flatbuffers::FlatBufferBuilder fbb;
    ipc::finish_envelope(fbb, 6, wire::Message::Shutdown,
                         wire::CreateShutdownDirect(fbb, 2000).Union());
    send(fbb);
    ASSERT_EQ(receive().type(), wire::Message::Result);
    wait_for_exit();
    ASSERT_TRUE(exit_.has_value());
    EXPECT_EQ(exit_->kind, sandbox::ExitKind::kExited) << exit_->to_string();
    EXPECT_EQ(exit_->exit_code, 0) << exit_->to_string();
  }
}

TEST_F(SandboxedWorkerTest, APluginsStaticConstructorAlreadyRunsUnderStageTwo) {
  spawn(PIO_TEST_CONSTRUCTOR_PROBE_PLUGIN);
  ASSERT_FALSE(HasFailure());
  // Had the constructor's execve worked, the worker would be /bin/true and say nothing.
  ipc::InboundMessage& hello = receive();
  ASSERT_EQ(hello.type(), wire::Message::Hello) << ipc::message_type_name(hello.type());
  flatbuffers::FlatBufferBuilder init;
  ipc::finish_envelope(init, 1, wire::Message::Initialize,
                       wire::CreateInitializeDirect(init, "{}").Union());
  send(init);
  ASSERT_EQ(receive().type(), wire::Message::Result);
  flatbuffers::FlatBufferBuilder info;
  ipc::finish_envelope(info, 2, wire::Message::Infer,
                       wire::CreateInferDirect(info, nullptr, "pio.get_model_info").Union());
  send(info);
  ipc::InboundMessage& reply = receive();
  ASSERT_EQ(reply.type(), wire::Message::Result);
  const auto attempts = nlohmann::json::parse(reply.envelope().message_as_Result()->json()->str());
  EXPECT_EQ(attempts.at("socket_errno"), EPERM);
  EXPECT_EQ(attempts.at("memfd_errno"), EPERM);
  EXPECT_EQ(attempts.at("execve_errno"), EPERM);
}

}  // namespace
}  // namespace pio::sdk
