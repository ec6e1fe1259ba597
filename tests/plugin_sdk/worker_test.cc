// pio-worker end to end: a real worker process, real plugin libraries, the real control channel
// and arena, spoken to by the small host side in worker_process.h.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pio/plugin.h"
#include "pio/plugin_sdk/worker_protocol.h"
#include "worker_process.h"

namespace pio::sdk::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::unique_ptr<WorkerProcess> start_ready(const std::string& plugin,
                                           const std::string& config = "{}",
                                           const std::vector<std::string>& args = {}) {
  auto worker = WorkerProcess::start(plugin, args);
  ipc::InboundMessage hello;
  EXPECT_TRUE(worker->receive(&hello).ok());
  EXPECT_EQ(hello.type(), wire::Message::Hello);
  const uint64_t id = worker->send_initialize(config);
  ipc::InboundMessage reply;
  EXPECT_TRUE(worker->receive(&reply).ok());
  EXPECT_EQ(reply.request_id(), id);
  EXPECT_EQ(reply.type(), wire::Message::Result);
  return worker;
}

// Receives until the answer to `id` that ends it; returns that last message's bytes copied.
struct Reply {
  wire::Message type = wire::Message::NONE;
  ErrorCode code = ErrorCode::kOk;
  std::string message;
  std::string json;
};

Reply receive_reply(WorkerProcess& worker, uint64_t id) {
  ipc::InboundMessage in;
  for (;;) {
    Status s = worker.receive(&in);
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (!s.ok()) return {};
    if (in.request_id() != id) continue;
    Reply r;
    r.type = in.type();
    if (in.type() == wire::Message::Error) {
      r.code = ipc::from_wire(in.envelope().message_as_Error()->code());
      r.message = in.envelope().message_as_Error()->message()->str();
    } else if (in.type() == wire::Message::Result && in.envelope().message_as_Result()->json()) {
      r.json = in.envelope().message_as_Result()->json()->str();
    }
    return r;
  }
}

int exit_code_of(int wait_status) { return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1; }

TEST(Worker, HelloNamesThePluginAndItsAbiVersion) {
  auto worker = WorkerProcess::start(PIO_TEST_ECHO_PLUGIN);
  ipc::InboundMessage hello;
  ASSERT_TRUE(worker->receive(&hello).ok());
  ASSERT_EQ(hello.type(), wire::Message::Hello);
  const auto* h = hello.envelope().message_as_Hello();
  EXPECT_EQ(h->plugin_name()->str(), "echo");
  EXPECT_EQ(h->plugin_abi_version(), PIO_PLUGIN_ABI_VERSION);
  EXPECT_EQ(h->protocol_version(), static_cast<uint32_t>(wire::ProtocolVersion::Current));
  EXPECT_EQ(h->pid(), worker->pid());
  ASSERT_NE(h->capabilities(), nullptr);
  ASSERT_EQ(h->capabilities()->size(), 2u);
  EXPECT_EQ(h->capabilities()->Get(0)->str(), kCapabilityText);
  // echo declares kResumesGenerations.
  EXPECT_EQ(h->capabilities()->Get(1)->str(), kCapabilityResume);
}

TEST(Worker, APluginThatDoesNotResumeGenerationsDoesNotListTheCapability) {
  auto worker = WorkerProcess::start(PIO_TEST_MINIMAL_PLUGIN);
  ipc::InboundMessage hello;
  ASSERT_TRUE(worker->receive(&hello).ok());
  ASSERT_EQ(hello.type(), wire::Message::Hello);
  const auto* capabilities = hello.envelope().message_as_Hello()->capabilities();
  if (capabilities != nullptr) {
    for (const auto* c : *capabilities) EXPECT_NE(c->str(), kCapabilityResume);
  }
}

TEST(Worker, AResumedGenerationSendsOnlyWhatFollowsAndCountsTheWholeGeneration) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  const std::vector<int32_t> sent = {'h', 0xE9};  // "hé" reached the client before a crash
  const uint64_t id = worker->send_generate("héllo", 100, /*stream=*/true, &sent);
  std::string text;
  ipc::InboundMessage in;
  for (;;) {
    ASSERT_TRUE(worker->receive(&in).ok());
    ASSERT_EQ(in.request_id(), id);
    ASSERT_EQ(in.type(), wire::Message::TokenChunk);
    const auto* chunk = in.envelope().message_as_TokenChunk();
    if (chunk->text()) text += chunk->text()->str();
    if (chunk->finish_reason() != wire::FinishReason::None) {
      EXPECT_EQ(chunk->finish_reason(), wire::FinishReason::Stop);
      EXPECT_EQ(chunk->completion_tokens(), 5u);
      break;
    }
  }
  EXPECT_EQ(text, "llo");
}

TEST(Worker, MinimalInferReturnsItsInputUnchanged) {
  auto worker = start_ready(PIO_TEST_MINIMAL_PLUGIN);
  const std::vector<int32_t> values = {7, -1, 3, 1 << 30, 0, 42};
  auto input = worker->write_input("ids", wire::DType::I32, {2, 3}, values.data());
  const uint64_t id = worker->send_infer("", "", {input});
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.request_id(), id);
  ASSERT_EQ(in.type(), wire::Message::Result);
  auto outputs = worker->outputs_of(in);
  ASSERT_TRUE(outputs.ok()) << outputs.status().to_string();
  ASSERT_EQ(outputs->size(), 1u);
  const auto& out = (*outputs)[0];
  EXPECT_EQ(out.name, "ids");
  EXPECT_EQ(out.dtype, wire::DType::I32);
  EXPECT_EQ(std::vector<int64_t>(out.shape.begin(), out.shape.end()), (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(out.length, values.size() * sizeof(int32_t));
  EXPECT_EQ(std::memcmp(out.data, values.data(), out.length), 0);
}

TEST(Worker, EchoInferDoublesF32ReadInPlaceFromTheWorkerToHostRing) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  const std::vector<float> x = {1.0f, -2.5f, 3.0f, 0.25f};
  const std::vector<uint8_t> bytes = {1, 2, 3, 4, 5};
  const uint64_t id =
      worker->send_infer("infer", "",
                         {worker->write_input("x", wire::DType::F32, {4}, x.data()),
                          worker->write_input("b", wire::DType::U8, {5}, bytes.data())});
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.request_id(), id);
  ASSERT_EQ(in.type(), wire::Message::Result);
  auto outputs = worker->outputs_of(in);
  ASSERT_TRUE(outputs.ok()) << outputs.status().to_string();
  ASSERT_EQ(outputs->size(), 2u);
  // In place: the descriptor points into the worker->host ring of the shared arena.
  const auto ring = worker->layout().ring_worker_to_host();
  EXPECT_GE((*outputs)[0].offset, ring.offset);
  EXPECT_LE((*outputs)[0].offset + (*outputs)[0].length, ring.offset + ring.size);
  const auto* doubled = reinterpret_cast<const float*>((*outputs)[0].data);
  EXPECT_EQ(std::vector<float>(doubled, doubled + 4),
            (std::vector<float>{2.0f, -5.0f, 6.0f, 0.5f}));
  const auto* reversed = reinterpret_cast<const uint8_t*>((*outputs)[1].data);
  EXPECT_EQ(std::vector<uint8_t>(reversed, reversed + 5), (std::vector<uint8_t>{5, 4, 3, 2, 1}));
}

// 64 KiB per output, 16 MiB in all through a 1 MiB ring: only possible because every Release
// frees its slot.
TEST(Worker, ReleasedOutputsLetTheRingCarryManyTimesItsSize) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  std::vector<float> x(16 * 1024);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const int rounds = 256;
  ASSERT_GT(rounds * x.size() * sizeof(float), 8 * worker->layout().ring_worker_to_host().size);
  for (int round = 0; round < rounds; ++round) {
    x[0] = static_cast<float>(round);
    const uint64_t id = worker->send_infer(
        "", "",
        {worker->write_input("x", wire::DType::F32, {static_cast<int64_t>(x.size())}, x.data())});
    ipc::InboundMessage in;
    ASSERT_TRUE(worker->receive(&in).ok());
    ASSERT_EQ(in.request_id(), id);
    ASSERT_EQ(in.type(), wire::Message::Result) << "round " << round;
    worker->release_inputs();  // inputs are released by the final answer
    auto outputs = worker->outputs_of(in);
    ASSERT_TRUE(outputs.ok()) << outputs.status().to_string();
    const auto* y = reinterpret_cast<const float*>((*outputs)[0].data);
    ASSERT_EQ(y[0], 2.0f * static_cast<float>(round));
    ASSERT_EQ(y[x.size() - 1], 2.0f * static_cast<float>(x.size() - 1));
    worker->send_release(*outputs);
  }
}

TEST(Worker, UnreleasedOutputsFillTheRingAndTheRequestFailsResourceExhausted) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  std::vector<float> x(64 * 1024);  // 256 KiB: the 1 MiB ring holds at most 4
  for (int round = 0;; ++round) {
    ASSERT_LT(round, 8) << "the ring never filled up";
    const uint64_t id = worker->send_infer(
        "", "",
        {worker->write_input("x", wire::DType::F32, {static_cast<int64_t>(x.size())}, x.data())},
        /*deadline_ms=*/200);
    Reply reply = receive_reply(*worker, id);
    worker->release_inputs();
    if (reply.type == wire::Message::Result) continue;
    ASSERT_EQ(reply.type, wire::Message::Error);
    EXPECT_EQ(reply.code, ErrorCode::kResourceExhausted);
    EXPECT_THAT(reply.message, HasSubstr("Release"));
    break;
  }
}

TEST(Worker, GenerateTextStreamsTokenChunksEndingWithStop) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  const std::string prompt = "héllo wörld ✓";
  const uint64_t id = worker->send_generate(prompt, 100);
  std::string text;
  std::vector<int32_t> ids;
  int chunks = 0;
  ipc::InboundMessage in;
  for (;;) {
    ASSERT_TRUE(worker->receive(&in).ok());
    ASSERT_EQ(in.request_id(), id);
    ASSERT_EQ(in.type(), wire::Message::TokenChunk);
    const auto* chunk = in.envelope().message_as_TokenChunk();
    if (chunk->token_ids())
      ids.insert(ids.end(), chunk->token_ids()->begin(), chunk->token_ids()->end());
    if (chunk->text()) text += chunk->text()->str();
    if (chunk->finish_reason() != wire::FinishReason::None) {
      EXPECT_EQ(chunk->finish_reason(), wire::FinishReason::Stop);
      EXPECT_EQ(chunk->completion_tokens(), 13u);
      EXPECT_EQ(chunk->prompt_tokens(), 13u);
      break;
    }
    ++chunks;
  }
  EXPECT_EQ(text, prompt);
  EXPECT_EQ(chunks, 13);  // one per character
  ASSERT_EQ(ids.size(), 13u);
  EXPECT_EQ(ids[1], 0xE9);     // é
  EXPECT_EQ(ids[12], 0x2713);  // ✓
}

TEST(Worker, GenerateStopsAtMaxTokensWithFinishLength) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  const uint64_t id = worker->send_generate("abcdefgh", 3, /*stream=*/false);
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.request_id(), id);
  ASSERT_EQ(in.type(), wire::Message::TokenChunk);
  const auto* chunk = in.envelope().message_as_TokenChunk();
  EXPECT_EQ(chunk->finish_reason(), wire::FinishReason::Length);
  EXPECT_EQ(chunk->text()->str(), "abc");
  EXPECT_EQ(chunk->completion_tokens(), 3u);
}

TEST(Worker, CancelMidStreamEndsTheGenerationWithFinishCancelled) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN, R"({"token_delay_ms": 20})");
  const std::string prompt(500, 'x');  // 10 s of tokens: only a Cancel ends it early
  const uint64_t id = worker->send_generate(prompt, 1000);
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.type(), wire::Message::TokenChunk);
  ASSERT_EQ(in.envelope().message_as_TokenChunk()->finish_reason(), wire::FinishReason::None);

  // The channel thread answers while the plugin is busy generating.
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(fbb, 999, wire::Message::Heartbeat, wire::CreateHeartbeat(fbb, 77).Union());
  ASSERT_TRUE(worker->send(fbb).ok());
  worker->send_cancel(id);

  bool heartbeat_answered = false;
  size_t tokens = 1;
  for (;;) {
    ASSERT_TRUE(worker->receive(&in).ok());
    if (in.type() == wire::Message::Heartbeat) {
      EXPECT_EQ(in.request_id(), 999u);
      EXPECT_EQ(in.envelope().message_as_Heartbeat()->sequence(), 77u);
      EXPECT_TRUE(in.envelope().message_as_Heartbeat()->reply());
      heartbeat_answered = true;
      continue;
    }
    ASSERT_EQ(in.request_id(), id);
    ASSERT_EQ(in.type(), wire::Message::TokenChunk);
    const auto* chunk = in.envelope().message_as_TokenChunk();
    if (chunk->finish_reason() == wire::FinishReason::None) {
      ++tokens;
      continue;
    }
    EXPECT_EQ(chunk->finish_reason(), wire::FinishReason::Cancelled);
    break;
  }
  EXPECT_TRUE(heartbeat_answered);
  EXPECT_LT(tokens, prompt.size());

  // The worker keeps serving after a cancellation.
  const uint64_t next = worker->send_generate("ok", 10, false);
  Reply reply = receive_reply(*worker, next);
  EXPECT_EQ(reply.type, wire::Message::TokenChunk);
}

TEST(Worker, AnExceptionInsideAVerbBecomesAnInternalErrorWithItsMessage) {
  auto worker = start_ready(PIO_TEST_THROWING_PLUGIN);
  const float x = 1.0f;
  const uint64_t id =
      worker->send_infer("", "", {worker->write_input("x", wire::DType::F32, {1}, &x)});
  Reply reply = receive_reply(*worker, id);
  ASSERT_EQ(reply.type, wire::Message::Error);
  EXPECT_EQ(reply.code, ErrorCode::kInternal);
  EXPECT_THAT(reply.message, HasSubstr("infer"));
  EXPECT_THAT(reply.message, HasSubstr("boom: thrown inside infer"));

  // Something that is not a std::exception is caught too, and the worker still answers.
  const uint64_t load = worker->send_load_model("");
  reply = receive_reply(*worker, load);
  ASSERT_EQ(reply.type, wire::Message::Error);
  EXPECT_EQ(reply.code, ErrorCode::kInternal);
  EXPECT_THAT(reply.message, HasSubstr("load_model"));

  const uint64_t info = worker->send_infer(std::string(kCommandGetModelInfo), "", {});
  reply = receive_reply(*worker, info);
  ASSERT_EQ(reply.type, wire::Message::Result);
  EXPECT_EQ(Json::parse(reply.json).at("name"), "throwing");
}

TEST(Worker, AnOlderPluginAbiIsRefusedWithAClearErrorAndExitCode) {
  auto worker = WorkerProcess::start(PIO_TEST_OLD_ABI_PLUGIN);
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.type(), wire::Message::Error);
  EXPECT_EQ(in.request_id(), 0u);
  const std::string message = in.envelope().message_as_Error()->message()->str();
  EXPECT_THAT(message, HasSubstr("plugin ABI version 0"));
  EXPECT_THAT(message, HasSubstr("rebuild the plugin"));
  EXPECT_EQ(exit_code_of(worker->wait()), static_cast<int>(WorkerExitCode::kPluginLoad));
}

TEST(Worker, AMissingPluginLibraryIsRefusedNamingIt) {
  auto worker = WorkerProcess::start("/nonexistent/libnothing.so");
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.type(), wire::Message::Error);
  EXPECT_THAT(in.envelope().message_as_Error()->message()->str(),
              HasSubstr("/nonexistent/libnothing.so"));
  EXPECT_EQ(exit_code_of(worker->wait()), static_cast<int>(WorkerExitCode::kPluginLoad));
}

TEST(Worker, TextVerbsAndExecuteCommandsAnswerWithJson) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  Reply r = receive_reply(
      *worker, worker->send_infer(std::string(kCommandTokenize), R"({"text": "aé"})", {}));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  EXPECT_EQ(Json::parse(r.json).at("token_ids"), Json::array({0x61, 0xE9}));

  r = receive_reply(*worker, worker->send_infer(std::string(kCommandDetokenize),
                                                R"({"token_ids": [104, 105]})", {}));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  EXPECT_EQ(Json::parse(r.json).at("text"), "hi");

  r = receive_reply(*worker, worker->send_infer("reverse", R"({"text": "abc"})", {}));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  EXPECT_EQ(Json::parse(r.json).at("text"), "cba");

  const std::vector<float> x = {1, 2, 3.5};
  r = receive_reply(
      *worker,
      worker->send_infer("sum", "{}", {worker->write_input("x", wire::DType::F32, {3}, x.data())}));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  EXPECT_DOUBLE_EQ(Json::parse(r.json).at("sum").get<double>(), 6.5);

  r = receive_reply(*worker, worker->send_infer("no_such_command", "{}", {}));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kNotFound);
  EXPECT_THAT(r.message, HasSubstr("no_such_command"));

  r = receive_reply(*worker, worker->send_infer(std::string(kCommandSupportsConfig),
                                                R"({"token_delay_ms": 5})", {}));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  EXPECT_EQ(Json::parse(r.json).at("supported"), true);
}

TEST(Worker, VerbsBeforeInitializeAndASecondInitializeAreRefused) {
  auto worker = WorkerProcess::start(PIO_TEST_ECHO_PLUGIN);
  ipc::InboundMessage hello;
  ASSERT_TRUE(worker->receive(&hello).ok());
  Reply r = receive_reply(*worker, worker->send_infer(std::string(kCommandGetModelInfo), "", {}));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(r.message, HasSubstr("Initialize first"));

  r = receive_reply(*worker, worker->send_initialize("{}"));
  ASSERT_EQ(r.type, wire::Message::Result);
  r = receive_reply(*worker, worker->send_initialize("{}"));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kFailedPrecondition);

  r = receive_reply(*worker, worker->send_infer(std::string(kCommandCleanup), "", {}));
  ASSERT_EQ(r.type, wire::Message::Result);
  r = receive_reply(*worker, worker->send_initialize(R"({"token_delay_ms": 1})"));
  EXPECT_EQ(r.type, wire::Message::Result);
}

TEST(Worker, AnInvalidConfigurationIsRefusedByThePlugin) {
  auto worker = WorkerProcess::start(PIO_TEST_ECHO_PLUGIN);
  ipc::InboundMessage hello;
  ASSERT_TRUE(worker->receive(&hello).ok());
  Reply r = receive_reply(*worker, worker->send_initialize("{not json"));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kInvalidArgument);
  r = receive_reply(*worker, worker->send_initialize(R"({"token_delay_ms": "slow"})"));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.message, HasSubstr("token_delay_ms"));
}

TEST(Worker, MinimalAnswersTextVerbsWithUnimplemented) {
  auto worker = start_ready(PIO_TEST_MINIMAL_PLUGIN);
  const uint64_t id = worker->send_generate("hi", 4);
  Reply r = receive_reply(*worker, id);
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kUnimplemented);
  EXPECT_THAT(r.message, HasSubstr("not a text model"));
}

class WorkerModelRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pio-worker-roots-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "models";
    std::filesystem::create_directories(root_ / "echo-model");
    std::filesystem::create_directories(base_ / "outside");
    std::ofstream(root_ / "echo-model" / "config.json") << "{}";
    std::ofstream(base_ / "outside" / "secret") << "s";
    std::filesystem::create_symlink(base_ / "outside" / "secret", root_ / "escape");
  }
  void TearDown() override { std::filesystem::remove_all(base_); }
  std::filesystem::path base_, root_;
};

TEST_F(WorkerModelRootTest, LoadModelOpensPathsInsideTheRootAndRefusesTheRest) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN, "{}", {"--model-root", root_.string()});
  const std::string good = (root_ / "echo-model").string();
  Reply r = receive_reply(*worker, worker->send_load_model(good));
  ASSERT_EQ(r.type, wire::Message::Result) << r.message;
  r = receive_reply(*worker, worker->send_infer(std::string(kCommandGetModelInfo), "", {}));
  EXPECT_EQ(Json::parse(r.json).at("model_path"), good);

  for (const std::string& bad :
       {(base_ / "outside" / "secret").string(), std::string("/etc/passwd"),
        (root_ / ".." / "outside" / "secret").string(), (root_ / "escape").string(),
        "/proc/self/root" + (root_ / "echo-model").string()}) {
    r = receive_reply(*worker, worker->send_load_model(bad));
    ASSERT_EQ(r.type, wire::Message::Error) << bad << " was opened";
    EXPECT_EQ(r.code, ErrorCode::kPermissionDenied) << r.message;
    EXPECT_THAT(r.message, HasSubstr(bad));
    EXPECT_THAT(r.message, HasSubstr(root_.string()));
  }
}

TEST(Worker, LoadModelWithoutModelRootsIsRefused) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  Reply r = receive_reply(*worker, worker->send_load_model("/tmp"));
  ASSERT_EQ(r.type, wire::Message::Error);
  EXPECT_EQ(r.code, ErrorCode::kPermissionDenied);
  EXPECT_THAT(r.message, HasSubstr("no model roots"));
}

TEST(Worker, StatsReportResidentMemory) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  flatbuffers::FlatBufferBuilder fbb;
  ipc::finish_envelope(fbb, 55, wire::Message::Stats, wire::CreateStats(fbb).Union());
  ASSERT_TRUE(worker->send(fbb).ok());
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.type(), wire::Message::Stats);
  EXPECT_EQ(in.request_id(), 55u);
  EXPECT_GT(in.envelope().message_as_Stats()->rss_bytes(), 1u << 20);
}

TEST(Worker, ShutdownCleansUpAnswersAndExitsZero) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  const uint64_t id = worker->send_shutdown();
  Reply r = receive_reply(*worker, id);
  EXPECT_EQ(r.type, wire::Message::Result);
  EXPECT_EQ(exit_code_of(worker->wait()), 0);
}

TEST(Worker, ShutdownDuringAGenerationCancelsItFirst) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN, R"({"token_delay_ms": 20})");
  const uint64_t generation = worker->send_generate(std::string(500, 'y'), 1000);
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.request_id(), generation);
  const uint64_t shutdown = worker->send_shutdown();
  for (;;) {
    ASSERT_TRUE(worker->receive(&in).ok());
    if (in.request_id() == shutdown) break;
    ASSERT_EQ(in.type(), wire::Message::TokenChunk);
    const auto reason = in.envelope().message_as_TokenChunk()->finish_reason();
    if (reason != wire::FinishReason::None) {
      EXPECT_EQ(reason, wire::FinishReason::Cancelled);
    }
  }
  EXPECT_EQ(in.type(), wire::Message::Result);
  EXPECT_EQ(exit_code_of(worker->wait()), 0);
}

TEST(Worker, ExitsZeroWhenTheHostClosesTheChannel) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  worker->close_channel();
  EXPECT_EQ(exit_code_of(worker->wait()), 0);
}

TEST(Worker, AnInputDescriptorOutsideTheRingIsRefusedBeforeThePluginRuns) {
  auto worker = start_ready(PIO_TEST_THROWING_PLUGIN);
  const float x[4] = {1, 2, 3, 4};
  ipc::TensorView input = worker->write_input("x", wire::DType::F32, {4}, x);
  input.offset = worker->layout().ring_worker_to_host().offset;  // the other ring
  Reply r = receive_reply(*worker, worker->send_infer("", "", {input}));
  ASSERT_EQ(r.type, wire::Message::Error);
  // invalid_argument from the worker's check, not the throwing plugin's internal error.
  EXPECT_EQ(r.code, ErrorCode::kInvalidArgument) << r.message;
  EXPECT_THAT(r.message, HasSubstr("input 0"));
}

TEST(Worker, ReleasingASlotThatIsNotLiveIsAnError) {
  auto worker = start_ready(PIO_TEST_ECHO_PLUGIN);
  ipc::TensorView bogus;
  bogus.name = "x";
  bogus.offset = worker->layout().ring_worker_to_host().offset + 64;
  bogus.length = 16;
  worker->send_release({bogus});
  ipc::InboundMessage in;
  ASSERT_TRUE(worker->receive(&in).ok());
  ASSERT_EQ(in.type(), wire::Message::Error);
  EXPECT_EQ(ipc::from_wire(in.envelope().message_as_Error()->code()), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace pio::sdk::testing
