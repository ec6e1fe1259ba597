// The Qwen3 dense plugin (qwen3_0_6b) on a tiny pio-mkmodel checkpoint with the real Qwen3
// tokenizer: called in-process, and through the real Host with the real pio-worker at low trust
// (model dir read-only under landlock), side by side with echo.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "host_fixture.h"
#include "pio/plugin_sdk/in_process_plugin.h"
#include "pio/runtime/chat_template_qwen3.h"
#include "pio/runtime/mkmodel.h"
#include "pio/runtime/tokenizer.h"

namespace pio::host {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using OrderedJson = nlohmann::ordered_json;

constexpr const char* kPlugin = "qwen3_0_6b";

fs::path tokenizer_dir() { return fs::path(PIO_TEST_DATA_DIR) / "qwen3-tokenizer"; }

std::vector<OrderedJson> read_jsonl(const std::string& name) {
  std::vector<OrderedJson> rows;
  std::ifstream in(fs::path(PIO_REPO_TEST_DATA_DIR) / "tokenizer" / name);
  EXPECT_TRUE(in.good()) << "cannot open " << name;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(OrderedJson::parse(line));
  }
  return rows;
}

// The tiny preset (2 layers, hidden 32, the real 151936-token vocabulary) with the real
// tokenizer files, in `dir`.
void write_tiny_checkpoint(const fs::path& dir, uint64_t seed = 1) {
  auto options = runtime::mkmodel_preset("tiny");
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  options->out_dir = dir;
  options->seed = seed;
  options->tokenizer_dir = tokenizer_dir();
  auto written = runtime::write_random_checkpoint(*options);
  ASSERT_TRUE(written.ok()) << written.status().to_string()
                            << "\n(the tokenizer comes from scripts/fetch-test-data.sh)";
}

// One in-process instance per test binary: a plugin linking libtorch is loaded once.
sdk::InProcessPlugin* in_process(const fs::path& model_dir) {
  static std::unique_ptr<sdk::InProcessPlugin> plugin;
  static fs::path loaded_dir;
  if (plugin == nullptr) {
    auto loaded = sdk::InProcessPlugin::load(fs::path(PIO_TEST_QWEN3_DIR) / "libqwen3_0_6b.so",
                                             R"({"threads": 2})");
    EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
    if (!loaded.ok()) return nullptr;
    plugin = std::move(*loaded);
  }
  if (loaded_dir != model_dir) {
    Status s = plugin->load_model(model_dir);
    EXPECT_TRUE(s.ok()) << s.to_string();
    if (!s.ok()) return nullptr;
    loaded_dir = model_dir;
  }
  return plugin.get();
}

struct Generated {
  std::vector<int32_t> ids;
  std::string text;
};

class Qwen3PluginTest : public testing::HostFixture {
 protected:
  void SetUp() override {
    HostFixture::SetUp();
    install_plugin(PIO_TEST_QWEN3_DIR, kPlugin);
    model_dir_ = root_ / "models" / "qwen3-tiny";
    write_tiny_checkpoint(model_dir_);
    for (const auto& entry : fs::recursive_directory_iterator(root_ / "models")) {
      chmod(entry.path().c_str(), entry.is_directory() ? 0755 : 0644);
    }
  }

  // A Host with echo and the Qwen3 plugin registered; the plugin is activated on `model` unless
  // `activate` is false.
  void start(bool activate = true, const std::string& plugin_config = "{}") {
    nlohmann::json settings = {{"model_roots", {(root_ / "models").string()}},
                               {"limits", {{"memory_mb", 2048}, {"pids", 64}}},
                               {"config", nlohmann::json::parse(plugin_config)}};
    make_host(nlohmann::json({{"plugins", {{kPlugin, settings}}}}).dump());
    ASSERT_FALSE(HasFailure());
    activate_echo();
    ASSERT_FALSE(HasFailure());
    auto registered = host_->register_plugin(root_ / "plugins" / kPlugin);
    ASSERT_TRUE(registered.ok()) << registered.status().to_string();
    if (activate) {
      Status s = host_->activate_plugin(kPlugin, {.model_path = model_dir_.string()});
      ASSERT_TRUE(s.ok()) << s.to_string();
    }
  }

  Result<nlohmann::json> execute(const std::string& command, const OrderedJson& params) {
    InferRequest request;
    request.command = command;
    request.params_json = params.dump();
    PIO_ASSIGN_OR_RETURN(InferOutputs out, host_->execute_plugin(kPlugin, std::move(request)));
    return nlohmann::json::parse(out.json());
  }

  fs::path model_dir_;
};

TEST_F(Qwen3PluginTest, GreedyAndSeededGenerationAreTheSameSandboxedAndInProcessAndAcrossRuns) {
  start();
  ASSERT_FALSE(HasFailure());
  sdk::InProcessPlugin* direct = in_process(model_dir_);
  ASSERT_NE(direct, nullptr);

  struct Case {
    GenerateOptions options;
    const char* prompt;
  };
  const Case cases[] = {
      {{.max_tokens = 24, .temperature = 0.0f}, "The sandbox keeps the plugin"},
      {{.max_tokens = 24, .temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .seed = 7},
       "你好, world"},
  };
  for (const Case& c : cases) {
    auto first = host_->generate(kPlugin, c.prompt, c.options);
    ASSERT_TRUE(first.ok()) << first.status().to_string();
    auto second = host_->generate(kPlugin, c.prompt, c.options);
    ASSERT_TRUE(second.ok()) << second.status().to_string();
    EXPECT_EQ(first->token_ids, second->token_ids) << c.prompt;
    EXPECT_EQ(first->text, second->text);
    EXPECT_EQ(first->completion_tokens, first->token_ids.size());
    EXPECT_GT(first->prompt_tokens, 0u);

    Generated local;
    sdk::InProcessPlugin::Sampling sampling{.max_tokens = c.options.max_tokens,
                                            .temperature = c.options.temperature,
                                            .top_k = c.options.top_k,
                                            .top_p = c.options.top_p,
                                            .seed = c.options.seed};
    auto done = direct->generate(c.prompt, sampling,
                                 [&](std::span<const int32_t> ids, std::string_view text) {
                                   local.ids.insert(local.ids.end(), ids.begin(), ids.end());
                                   local.text += text;
                                   return true;
                                 });
    ASSERT_TRUE(done.ok()) << done.status().to_string();
    EXPECT_EQ(first->token_ids, local.ids) << c.prompt;
    EXPECT_EQ(first->text, local.text);
    EXPECT_EQ(first->prompt_tokens, done->prompt_tokens);
  }
  // Another seed draws other tokens (the seed reaches the sampler).
  auto seeded = cases[1].options;
  auto a = host_->generate(kPlugin, cases[1].prompt, seeded);
  seeded.seed = 8;
  auto b = host_->generate(kPlugin, cases[1].prompt, seeded);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->token_ids, b->token_ids);
  expect_echo_answers();
}

TEST_F(Qwen3PluginTest, EveryTokenizerReferenceCaseMatchesThroughTheSandboxedWorker) {
  start();
  ASSERT_FALSE(HasFailure());
  const auto cases = read_jsonl("qwen3_cases.jsonl");
  ASSERT_EQ(cases.size(), 420u);
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto answer = execute("tokenize", {{"text", cases[i]["text"]}});
    ASSERT_TRUE(answer.ok()) << "case " << i << ": " << answer.status().to_string();
    if ((*answer)["ids"] == nlohmann::json(cases[i]["ids"])) {
      ++passed;
    } else {
      ADD_FAILURE() << "case " << i << ": " << cases[i]["text"].dump();
    }
  }
  EXPECT_EQ(passed, 420);
  // And back: detokenize gives the text of the ids.
  auto text = execute("detokenize", {{"ids", {9707, 11, 847, 5562, 374, 18838}}});
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ((*text)["text"], "Hello, my dog is cute");
}

TEST_F(Qwen3PluginTest, EveryChatTemplateReferenceCaseRendersByteForByteInTheSandboxedWorker) {
  start();
  ASSERT_FALSE(HasFailure());
  const auto cases = read_jsonl("qwen3_chat_cases.jsonl");
  ASSERT_EQ(cases.size(), 150u);
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    OrderedJson params = cases[i];
    params.erase("rendered");
    auto answer = execute("render_chat", params);
    ASSERT_TRUE(answer.ok()) << "case " << i << ": " << answer.status().to_string();
    if ((*answer)["rendered"] == cases[i]["rendered"].get<std::string>()) {
      ++passed;
    } else {
      ADD_FAILURE() << "case " << i << " differs";
    }
  }
  EXPECT_EQ(passed, 150);
}

TEST_F(Qwen3PluginTest, ChatRendersTheTemplateTokenizesItAndGenerates) {
  start();
  ASSERT_FALSE(HasFailure());
  const OrderedJson messages = OrderedJson::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}])");
  auto reply = host_->chat(kPlugin, messages.dump(), {.max_tokens = 8, .temperature = 0.0f});
  ASSERT_TRUE(reply.ok()) << reply.status().to_string();
  EXPECT_GE(reply->completion_tokens, 1u);
  EXPECT_LE(reply->completion_tokens, 8u);

  // The prompt the worker counted is the template's text, tokenized.
  auto tokenizer = runtime::Tokenizer::from_file(tokenizer_dir() / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  auto rendered = runtime::render_qwen3_chat(
      messages, OrderedJson(), {.add_generation_prompt = true, .enable_thinking = true});
  ASSERT_TRUE(rendered.ok());
  EXPECT_EQ(reply->prompt_tokens, tokenizer->encode(*rendered)->size());

  // The object form carries template arguments: thinking off adds the empty think block.
  OrderedJson request = {{"messages", messages},
                         {"chat_template_kwargs", {{"enable_thinking", false}}}};
  auto no_think = host_->chat(kPlugin, request.dump(), {.max_tokens = 4, .temperature = 0.0f});
  ASSERT_TRUE(no_think.ok()) << no_think.status().to_string();
  auto rendered_off = runtime::render_qwen3_chat(
      messages, OrderedJson(), {.add_generation_prompt = true, .enable_thinking = false});
  ASSERT_TRUE(rendered_off.ok());
  EXPECT_EQ(no_think->prompt_tokens, tokenizer->encode(*rendered_off)->size());
  EXPECT_GT(no_think->prompt_tokens, reply->prompt_tokens);

  auto bad = host_->chat(kPlugin, R"({"messages": [], "bogus": 1})", {.max_tokens = 4});
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("bogus"));
}

TEST_F(Qwen3PluginTest, TheInstruct2507PluginHasNoThinkingSwitchInItsTemplate) {
  // Same model code, the other manifest: its chat template never adds the empty think block.
  const std::string name = "qwen3_4b_instruct_2507";
  install_plugin(PIO_TEST_QWEN3_4B_DIR, name);
  nlohmann::json settings = {{"model_roots", {(root_ / "models").string()}},
                             {"limits", {{"memory_mb", 2048}, {"pids", 64}}}};
  make_host(nlohmann::json({{"plugins", {{name, settings}}}}).dump());
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(host_->register_plugin(root_ / "plugins" / name).ok());
  Status s = host_->activate_plugin(name, {.model_path = model_dir_.string()});
  ASSERT_TRUE(s.ok()) << s.to_string();
  const OrderedJson messages = OrderedJson::parse(R"([{"role": "user", "content": "Hi"}])");
  OrderedJson request = {{"messages", messages},
                         {"chat_template_kwargs", {{"enable_thinking", false}}}};
  auto reply = host_->chat(name, request.dump(), {.max_tokens = 2, .temperature = 0.0f});
  ASSERT_TRUE(reply.ok()) << reply.status().to_string();
  auto tokenizer = runtime::Tokenizer::from_file(tokenizer_dir() / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", nothing after it.
  auto plain = tokenizer->encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(reply->prompt_tokens, plain->size());
  auto info = host_->execute_plugin(name, {.command = "pio.get_model_info"});
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_EQ(nlohmann::json::parse(info->json())["settings"]["chat_template"],
            "qwen3_instruct_2507");
}

TEST_F(Qwen3PluginTest, AStreamWhoseWorkerIsKilledContinuesWithExactlyItsUncrashedText) {
  start();
  ASSERT_FALSE(HasFailure());
  const GenerateOptions cases[] = {
      {.max_tokens = 24, .temperature = 0.0f},
      {.max_tokens = 24, .temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .seed = 7},
  };
  const char* prompt = "你好, the sandbox keeps the plugin";
  uint32_t kills = 0;
  for (GenerateOptions options : cases) {
    // A restart loads libtorch and the checkpoint again: seconds on a loaded machine.
    options.deadline = std::chrono::seconds(120);
    auto uncrashed = host_->generate(kPlugin, prompt, options);
    ASSERT_TRUE(uncrashed.ok()) << uncrashed.status().to_string();
    ASSERT_GE(uncrashed->token_ids.size(), 4u);
    // Early (after the first token) and half-way.
    for (size_t kill_after : {size_t{1}, uncrashed->token_ids.size() / 2}) {
      SCOPED_TRACE("seed " + std::to_string(options.seed.value_or(0)) + ", killed after " +
                   std::to_string(kill_after) + " chunks");
      int pid = 0;
      for (int i = 0; i < 1000 && pid == 0; ++i) {
        auto status = host_->plugin_status(kPlugin);
        if (status.ok() && status->state == PluginState::kReady) pid = status->pid;
        if (pid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_GT(pid, 0);
      std::string streamed;
      std::vector<int32_t> ids;
      auto r = host_->generate_stream(kPlugin, prompt, options, [&](const TokenChunk& c) {
        streamed += c.text;
        ids.insert(ids.end(), c.token_ids.begin(), c.token_ids.end());
        if (ids.size() == kill_after) ::kill(pid, SIGKILL);
        return true;
      });
      ++kills;
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ(ids, uncrashed->token_ids);
      EXPECT_EQ(streamed, uncrashed->text);
      EXPECT_EQ(r->text, uncrashed->text);
      EXPECT_EQ(r->finish_reason, uncrashed->finish_reason);
      EXPECT_EQ(r->completion_tokens, uncrashed->completion_tokens);
      EXPECT_EQ(r->prompt_tokens, uncrashed->prompt_tokens);
      // The next stream starts once the Host has seen this kill.
      for (int i = 0; i < 1000 && host_->plugin_status(kPlugin)->crashes < kills; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  auto status = host_->plugin_status(kPlugin);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->crashes, kills);
  // A stream the worker had already finished when the kill came needs no resume; the others did.
  EXPECT_GE(status->resumed, 1u);
}

TEST_F(Qwen3PluginTest, AGenerationIsCancellableMidStreamAndTheWorkerServesOn) {
  start();
  ASSERT_FALSE(HasFailure());
  int chunks = 0;
  auto r =
      host_->generate_stream(kPlugin, "Count with me", {.max_tokens = 200, .temperature = 0.0f},
                             [&](const TokenChunk&) { return ++chunks < 3; });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_LT(r->completion_tokens, 200u);
  EXPECT_EQ(chunks, 3);
  auto again = host_->generate(kPlugin, "Count with me", {.max_tokens = 5, .temperature = 0.0f});
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->finish_reason, FinishReason::kLength);
  EXPECT_EQ(again->completion_tokens, 5u);
  EXPECT_EQ(host_->plugin_status(kPlugin)->crashes, 0u);
}

TEST_F(Qwen3PluginTest, BadRequestsAreRefusedNamingWhatIsWrong) {
  start(/*activate=*/true, R"({"max_context": 16})");
  ASSERT_FALSE(HasFailure());
  auto too_long = host_->generate(kPlugin, std::string(200, 'a') + " b c d e f g h i j k l m n o p",
                                  {.max_tokens = 4});
  EXPECT_EQ(too_long.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(too_long.status().message(), HasSubstr("max_context"));

  auto bad_top_p = host_->generate(kPlugin, "hi", {.max_tokens = 4, .top_p = 0.0f});
  EXPECT_EQ(bad_top_p.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad_top_p.status().message(), HasSubstr("top_p"));

  InferRequest logits;
  const int32_t ids[] = {1, 2, 151936};
  logits.inputs.push_back(
      {"input_ids", wire::DType::I32, {3}, std::as_bytes(std::span<const int32_t>(ids))});
  auto out = host_->execute_plugin(kPlugin, std::move(logits));
  EXPECT_EQ(out.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("151936"));
  // None of it hurt the worker.
  EXPECT_EQ(host_->plugin_status(kPlugin)->crashes, 0u);
  auto fine = host_->generate(kPlugin, "hi", {.max_tokens = 2});
  EXPECT_TRUE(fine.ok()) << fine.status().to_string();
}

TEST_F(Qwen3PluginTest, InferReturnsTheLogitsOfEveryPositionAsInProcess) {
  start();
  ASSERT_FALSE(HasFailure());
  const int32_t ids[] = {9707, 11, 847, 5562};
  InferRequest request;
  request.inputs.push_back(
      {"input_ids", wire::DType::I32, {4}, std::as_bytes(std::span<const int32_t>(ids))});
  auto out = host_->execute_plugin(kPlugin, std::move(request));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const ipc::TensorView* logits = out->find("logits");
  ASSERT_NE(logits, nullptr);
  ASSERT_EQ(logits->shape.size(), 2u);
  EXPECT_EQ(logits->shape[0], 4);
  EXPECT_EQ(logits->shape[1], 151936);

  sdk::InProcessPlugin* direct = in_process(model_dir_);
  ASSERT_NE(direct, nullptr);
  pio_tensor_view view{};
  const int64_t shape[] = {4};
  view.name = "input_ids";
  view.dtype = PIO_DTYPE_I32;
  view.shape = shape;
  view.rank = 1;
  view.data = ids;
  view.length = sizeof(ids);
  auto local = direct->infer("", "", std::span(&view, 1));
  ASSERT_TRUE(local.ok()) << local.status().to_string();
  ASSERT_EQ(local->outputs.size(), 1u);
  ASSERT_EQ(local->outputs[0].bytes.size(), logits->length);
  EXPECT_EQ(std::memcmp(local->outputs[0].bytes.data(), logits->data, logits->length), 0);
}

// Writes `bytes` over `path` at `offset` (or truncates it to `offset` when bytes is empty).
void corrupt(const fs::path& path, uint64_t offset, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  if (bytes.empty()) {
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(offset)), 0);
  } else {
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
  }
  ::close(fd);
}

void replace_in_file(const fs::path& path, const std::string& from, const std::string& to) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << path;
  text.replace(at, from.size(), to);
  std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
}

TEST_F(Qwen3PluginTest, CorruptCheckpointsFailActivationWithTheReasonAndTheHostServesOn) {
  start(/*activate=*/false);
  ASSERT_FALSE(HasFailure());
  struct Corruption {
    const char* name;
    std::function<void(const fs::path&)> apply;
    const char* expected;
  };
  const Corruption corruptions[] = {
      {"truncated", [](const fs::path& d) { corrupt(d / "model.safetensors", 4096, ""); },
       "model.safetensors"},
      {"header length past the end",
       [](const fs::path& d) {
         corrupt(d / "model.safetensors", 0, std::string("\xff\xff\xff\x7f", 4));
       },
       "header"},
      {"wrong shapes",
       [](const fs::path& d) {
         replace_in_file(d / "config.json", "\"intermediate_size\": 64",
                         "\"intermediate_size\": 96");
       },
       "[96, 32]"},
      {"one tensor of another dtype",
       // Same byte length: "F16" plus a space (JSON whitespace) where the header said "BF16".
       [](const fs::path& d) { replace_in_file(d / "model.safetensors", "\"BF16\"", "\"F16\" "); },
       "F16"},
      {"no tokenizer", [](const fs::path& d) { fs::remove(d / "tokenizer.json"); },
       "tokenizer.json"},
  };
  for (const Corruption& c : corruptions) {
    SCOPED_TRACE(c.name);
    const fs::path dir =
        root_ / "models" / (std::string("broken-") + std::to_string(&c - corruptions));
    write_tiny_checkpoint(dir);
    c.apply(dir);
    for (const auto& entry : fs::recursive_directory_iterator(dir))
      chmod(entry.path().c_str(), 0644);
    chmod(dir.c_str(), 0755);
    Status s = host_->activate_plugin(kPlugin, {.model_path = dir.string()});
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.code(), ErrorCode::kWorkerCrashed) << s.to_string();
    EXPECT_THAT(s.message(), HasSubstr(c.expected)) << s.to_string();
    expect_echo_answers();
  }
  // And the same plugin then loads a good checkpoint.
  Status s = host_->activate_plugin(kPlugin, {.model_path = model_dir_.string()});
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_TRUE(host_->generate(kPlugin, "ok", {.max_tokens = 2}).ok());
}

TEST_F(Qwen3PluginTest, AModelPathOutsideTheRootsIsRefusedBeforeTheWorkerSeesIt) {
  start(/*activate=*/false);
  ASSERT_FALSE(HasFailure());
  Status s = host_->activate_plugin(kPlugin, {.model_path = (root_ / "outside").string()});
  EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied) << s.to_string();
  s = host_->activate_plugin(kPlugin,
                             {.model_path = (model_dir_ / ".." / ".." / "outside").string()});
  EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied) << s.to_string();
  expect_echo_answers();
}

}  // namespace
}  // namespace pio::host
