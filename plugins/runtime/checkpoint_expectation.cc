#include "pio/runtime/checkpoint_expectation.h"

#include <fmt/format.h>

#include <set>
#include <string_view>

namespace pio::runtime {
namespace {

// Enough to see a pattern (a whole layer wrong, a renamed prefix) without a megabyte message.
constexpr size_t kMaxListedProblems = 20;

std::string describe(const std::vector<int64_t>& shape, DType dtype) {
  return fmt::format("{} {}", shape_to_string(shape), dtype_name(dtype));
}

}  // namespace

Status check_checkpoint_tensors(const Checkpoint& checkpoint,
                                const std::vector<ExpectedTensor>& expected) {
  std::vector<std::string> problems;
  std::set<std::string_view> expected_names;
  for (const ExpectedTensor& e : expected) {
    expected_names.insert(e.name);
    const TensorView* actual = checkpoint.find(e.name);
    if (actual == nullptr) {
      if (!e.optional) {
        problems.push_back(fmt::format("tensor \"{}\" is missing (expected {})", e.name,
                                       describe(e.shape, e.dtype)));
      }
      continue;
    }
    if (actual->shape != e.shape || actual->dtype != e.dtype) {
      problems.push_back(fmt::format("tensor \"{}\" in \"{}\" is {}, expected {}", e.name,
                                     actual->file, describe(actual->shape, actual->dtype),
                                     describe(e.shape, e.dtype)));
    }
  }
  for (const auto& [name, view] : checkpoint.tensors()) {
    if (!expected_names.contains(name)) {
      problems.push_back(fmt::format("tensor \"{}\" ({}) in \"{}\" is not part of this model", name,
                                     describe(view->shape, view->dtype), view->file));
    }
  }
  if (problems.empty()) return ok_status();
  std::string message = fmt::format("checkpoint \"{}\" does not match the model: {} problem{}",
                                    checkpoint.directory().string(), problems.size(),
                                    problems.size() == 1 ? "" : "s");
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) {
    message += "; " + problems[i];
  }
  if (problems.size() > kMaxListedProblems) {
    message += fmt::format("; and {} more", problems.size() - kMaxListedProblems);
  }
  return invalid_argument_error(std::move(message));
}

std::vector<ExpectedTensor> qwen3_dense_tensors(const Qwen3Config& c, DType dtype) {
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  std::vector<ExpectedTensor> tensors;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    tensors.push_back({std::move(name), std::move(shape), dtype, false});
  };
  add("model.embed_tokens.weight", {c.vocab_size, hidden});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string layer = fmt::format("model.layers.{}.", i);
    add(layer + "input_layernorm.weight", {hidden});
    add(layer + "self_attn.q_proj.weight", {q_out, hidden});
    add(layer + "self_attn.k_proj.weight", {kv_out, hidden});
    add(layer + "self_attn.v_proj.weight", {kv_out, hidden});
    add(layer + "self_attn.o_proj.weight", {hidden, q_out});
    add(layer + "self_attn.q_norm.weight", {c.head_dim});
    add(layer + "self_attn.k_norm.weight", {c.head_dim});
    add(layer + "post_attention_layernorm.weight", {hidden});
    add(layer + "mlp.gate_proj.weight", {c.intermediate_size, hidden});
    add(layer + "mlp.up_proj.weight", {c.intermediate_size, hidden});
    add(layer + "mlp.down_proj.weight", {hidden, c.intermediate_size});
  }
  add("model.norm.weight", {hidden});
  add("lm_head.weight", {c.vocab_size, hidden});
  tensors.back().optional = c.tie_word_embeddings;
  return tensors;
}

}  // namespace pio::runtime
