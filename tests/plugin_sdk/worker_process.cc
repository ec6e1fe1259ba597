#include "worker_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "pio/ipc/socket_packet.h"

namespace pio::sdk::testing {

namespace {

ipc::ArenaConfig small_config() {
  ipc::ArenaConfig config;
  config.lane_slots = 16;
  config.lane_slot_bytes = 1024;
  config.host_to_worker_ring_bytes = 1 << 20;
  config.worker_to_host_ring_bytes = 1 << 20;
  return config;
}

// An empty stage-2 program, sealed as the launcher seals the real one: "no syscall filtering".
UniqueFd empty_stage2_filter() {
  UniqueFd fd(memfd_create("pio-test-stage2", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  PIO_CHECK(fd.valid());
  PIO_CHECK(
      fcntl(fd.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
  return fd;
}

// A close-on-exec copy numbered >= 100, so that the dup2 onto 3, 4 and 5 never meets a source.
UniqueFd high_copy(int fd) {
  UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 100));
  PIO_CHECK(copy.valid());
  return copy;
}

}  // namespace

std::unique_ptr<WorkerProcess> WorkerProcess::start(const std::string& plugin,
                                                    const std::vector<std::string>& extra_args) {
  std::unique_ptr<WorkerProcess> p(new WorkerProcess());
  auto layout = ipc::ArenaLayout::compute(small_config());
  PIO_CHECK(layout.ok());
  p->layout_ = *layout;
  auto arena = ipc::ShmArena::create("pio-test-worker-arena", layout->total_size());
  PIO_CHECK(arena.ok());
  p->arena_ = std::make_unique<ipc::ShmArena>(std::move(*arena));
  ipc::Channel::prepare_arena(*p->arena_, *p->layout_);
  auto ring = ipc::ShmRing::create(layout->ring_host_to_worker().offset,
                                   layout->ring_host_to_worker().size);
  PIO_CHECK(ring.ok());
  p->inputs_ring_.emplace(std::move(*ring));
  auto sockets = ipc::make_packet_socketpair();
  PIO_CHECK(sockets.ok());

  UniqueFd socket = high_copy(sockets->second.get());
  UniqueFd arena_fd = high_copy(p->arena_->fd());
  UniqueFd stage2 = empty_stage2_filter();
  UniqueFd stage2_high = high_copy(stage2.get());

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, socket.get(), 3);
  posix_spawn_file_actions_adddup2(&actions, arena_fd.get(), 4);
  posix_spawn_file_actions_adddup2(&actions, stage2_high.get(), 5);
  posix_spawn_file_actions_addclosefrom_np(&actions, 6);

  std::vector<std::string> args = {PIO_TEST_WORKER_PATH};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  args.push_back(plugin);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  const int rc = posix_spawn(&p->pid_, PIO_TEST_WORKER_PATH, &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  PIO_CHECK(rc == 0);

  sockets->second.reset();
  auto channel = ipc::Channel::create(std::move(sockets->first), *p->arena_, *p->layout_,
                                      ipc::ChannelSide::kHost);
  PIO_CHECK(channel.ok());
  p->channel_ = std::make_unique<ipc::Channel>(std::move(*channel));
  return p;
}

WorkerProcess::~WorkerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

int WorkerProcess::wait() {
  int status = 0;
  if (pid_ > 0) {
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

Status WorkerProcess::receive(ipc::InboundMessage* out) {
  return channel_->receive(out, ipc::deadline_after(std::chrono::seconds(10)));
}

Status WorkerProcess::send(flatbuffers::FlatBufferBuilder& fbb) {
  return channel_->send(ipc::builder_bytes(fbb), {}, ipc::deadline_after(std::chrono::seconds(10)));
}

uint64_t WorkerProcess::send_initialize(const std::string& config_json) {
  const uint64_t id = next_id_++;
  flatbuffers::FlatBufferBuilder fbb;
  auto msg = wire::CreateInitializeDirect(fbb, config_json.c_str());
  ipc::finish_envelope(fbb, id, wire::Message::Initialize, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
  return id;
}

uint64_t WorkerProcess::send_load_model(const std::string& path) {
  const uint64_t id = next_id_++;
  flatbuffers::FlatBufferBuilder fbb;
  auto msg = wire::CreateLoadModelDirect(fbb, path.c_str(), "{}");
  ipc::finish_envelope(fbb, id, wire::Message::LoadModel, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
  return id;
}

uint64_t WorkerProcess::send_infer(const std::string& command, const std::string& params_json,
                                   const std::vector<ipc::TensorView>& inputs,
                                   uint32_t deadline_ms) {
  const uint64_t id = next_id_++;
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TensorDesc>> descs;
  for (const auto& in : inputs) {
    auto desc =
        ipc::build_tensor_desc(fbb, in.name, in.dtype, std::span(in.shape.data(), in.shape.size()),
                               wire::Ring::HostToWorker, in.slot());
    PIO_CHECK(desc.ok());
    descs.push_back(*desc);
  }
  auto msg =
      wire::CreateInferDirect(fbb, &descs, command.c_str(), params_json.c_str(), deadline_ms);
  ipc::finish_envelope(fbb, id, wire::Message::Infer, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
  return id;
}

uint64_t WorkerProcess::send_generate(const std::string& prompt, uint32_t max_tokens, bool stream,
                                      const std::vector<int32_t>* resume) {
  const uint64_t id = next_id_++;
  flatbuffers::FlatBufferBuilder fbb;
  auto params = wire::CreateSamplingParamsDirect(fbb, max_tokens);
  auto msg =
      wire::CreateGenerateDirect(fbb, prompt.c_str(), nullptr, nullptr, params, stream, 0, resume);
  ipc::finish_envelope(fbb, id, wire::Message::Generate, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
  return id;
}

void WorkerProcess::send_cancel(uint64_t target) {
  flatbuffers::FlatBufferBuilder fbb;
  auto msg = wire::CreateCancel(fbb, target);
  ipc::finish_envelope(fbb, next_id_++, wire::Message::Cancel, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
}

void WorkerProcess::send_release(const std::vector<ipc::TensorView>& outputs) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TensorDesc>> descs;
  for (const auto& out : outputs) {
    descs.push_back(wire::CreateTensorDescDirect(fbb, out.name.c_str(), out.dtype, nullptr,
                                                 wire::Device::Cpu, wire::Ring::WorkerToHost,
                                                 out.offset, out.length));
  }
  auto msg = wire::CreateReleaseDirect(fbb, &descs);
  ipc::finish_envelope(fbb, next_id_++, wire::Message::Release, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
}

uint64_t WorkerProcess::send_shutdown() {
  const uint64_t id = next_id_++;
  flatbuffers::FlatBufferBuilder fbb;
  auto msg = wire::CreateShutdownDirect(fbb, 2000, "test done");
  ipc::finish_envelope(fbb, id, wire::Message::Shutdown, msg.Union());
  EXPECT_TRUE(send(fbb).ok());
  return id;
}

ipc::TensorView WorkerProcess::write_input(const std::string& name, wire::DType dtype,
                                           const std::vector<int64_t>& shape, const void* data) {
  auto bytes = ipc::tensor_byte_size(dtype, shape);
  PIO_CHECK(bytes.ok());
  auto slot = inputs_ring_->allocate(*bytes);
  PIO_CHECK(slot.ok());
  input_slots_.push_back(*slot);
  std::memcpy(arena_->data() + slot->offset, data, *bytes);
  ipc::TensorView view;
  view.name = name;
  view.dtype = dtype;
  view.shape.assign(shape.begin(), shape.end());
  view.data = arena_->data() + slot->offset;
  view.length = *bytes;
  view.ring = wire::Ring::HostToWorker;
  view.offset = slot->offset;
  return view;
}

void WorkerProcess::release_inputs() {
  for (const auto& slot : input_slots_) PIO_CHECK(inputs_ring_->release(slot).ok());
  input_slots_.clear();
}

Result<std::vector<ipc::TensorView>> WorkerProcess::outputs_of(const ipc::InboundMessage& result) {
  const auto* r = result.envelope().message_as_Result();
  if (r == nullptr) return invalid_argument_error("not a Result");
  std::vector<ipc::TensorView> views;
  if (r->outputs() == nullptr) return views;
  const ipc::RegionBounds bounds{arena_->data(), layout_->ring_worker_to_host().offset,
                                 layout_->ring_worker_to_host().size};
  for (const auto* desc : *r->outputs()) {
    PIO_ASSIGN_OR_RETURN(auto view,
                         ipc::validate_tensor_desc(desc, wire::Ring::WorkerToHost, bounds));
    views.push_back(std::move(view));
  }
  return views;
}

}  // namespace pio::sdk::testing
