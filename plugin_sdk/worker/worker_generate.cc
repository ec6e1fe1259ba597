// Generate: the streaming verbs (generate_text, chat_completion) and their TokenChunks.
//
// Cancellation: the request's flag is set by the channel thread when a Cancel for it arrives. The
// token callback checks it before sending each chunk and returns non-zero once it is set, which
// tells the plugin to stop; is_cancelled() says the same to a plugin between tokens. However the
// plugin ends, a cancelled request's last message is a TokenChunk with finish_reason Cancelled.

#include <cstddef>
#include <cstdio>

#include "fmt/format.h"
#include "internal/worker_loop.h"
#include "internal/worker_services.h"
#include "pio/ipc/envelope.h"

namespace pio::sdk::worker {

namespace {

std::string_view view_of(const flatbuffers::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->c_str(), s->size());
}

// What the token callback needs; lives on the executor's stack for one Generate.
struct StreamState {
  std::function<Status(std::span<const int32_t>, std::string_view)> send_chunk;
  const CallState* call = nullptr;
  bool stream = true;
  std::vector<int32_t> all_ids;  // everything, when not streaming
  std::string all_text;
  uint32_t completion_tokens = 0;
  bool send_failed = false;
  bool plugin_misbehaved = false;
};

int on_tokens(void* user, const int32_t* ids, size_t n, const char* text, size_t text_len) {
  auto* s = static_cast<StreamState*>(user);
  try {
    if (s->send_failed || s->plugin_misbehaved) return 1;
    if ((ids == nullptr && n > 0) || (text == nullptr && text_len > 0)) {
      s->plugin_misbehaved = true;
      return 1;
    }
    if (s->call->cancelled->load(std::memory_order_relaxed) || s->call->deadline_passed()) return 1;
    s->completion_tokens += static_cast<uint32_t>(n);
    const std::span<const int32_t> id_span(ids, n);
    const std::string_view piece(text == nullptr ? "" : text, text_len);
    if (!s->stream) {
      s->all_ids.insert(s->all_ids.end(), id_span.begin(), id_span.end());
      s->all_text.append(piece);
      return 0;
    }
    if (!s->send_chunk(id_span, piece).ok()) {
      s->send_failed = true;
      return 1;
    }
    return 0;
  } catch (...) {
    s->send_failed = true;
    return 1;
  }
}

}  // namespace

bool WorkerLoop::can_resume() const {
  return api_.struct_size >= offsetof(pio_plugin_api, capabilities) + sizeof(api_.capabilities) &&
         (api_.capabilities & PIO_PLUGIN_CAPABILITY_RESUME) != 0 && api_.generate_text != nullptr;
}

void WorkerLoop::run_generate(const Request& request, const wire::Generate& message) {
  const bool chat = message.messages_json() != nullptr;
  const auto verb = chat ? api_.chat_completion : api_.generate_text;
  const char* verb_name = chat ? "chat_completion" : "generate_text";
  if (verb == nullptr) {
    return send_error(request.id, unimplemented_error(fmt::format(
                                      "{}: plugin {} is not a text model", verb_name, api_.name)));
  }

  CallState call;
  call.ring = &outputs_;
  call.arena_base = arena_.data();
  call.cancelled = request.cancelled.get();
  call.deadline = deadline_of(message.deadline_ms());

  // Sampling parameters, with the schema's defaults when the host sent none.
  const wire::SamplingParams* p = message.params();
  std::vector<std::string> stop;
  std::vector<const char*> stop_ptrs;
  std::vector<int32_t> stop_ids;
  pio_sampling_params params{};
  params.struct_size = sizeof(params);
  params.max_tokens = p ? p->max_tokens() : 16;
  params.temperature = p ? p->temperature() : 1.0f;
  params.top_k = p ? p->top_k() : 0;
  params.top_p = p ? p->top_p() : 1.0f;
  params.min_p = p ? p->min_p() : 0.0f;
  params.repetition_penalty = p ? p->repetition_penalty() : 1.0f;
  params.presence_penalty = p ? p->presence_penalty() : 0.0f;
  params.frequency_penalty = p ? p->frequency_penalty() : 0.0f;
  params.seed = p ? p->seed() : 0;
  params.has_seed = p && p->has_seed() ? 1 : 0;
  params.ignore_eos = p && p->ignore_eos() ? 1 : 0;
  if (p != nullptr && p->stop() != nullptr) {
    for (const auto* s : *p->stop()) stop.emplace_back(view_of(s));
    for (const auto& s : stop) stop_ptrs.push_back(s.c_str());
  }
  if (p != nullptr && p->stop_token_ids() != nullptr) {
    stop_ids.assign(p->stop_token_ids()->begin(), p->stop_token_ids()->end());
  }
  params.stop = stop_ptrs.data();
  params.n_stop = stop_ptrs.size();
  params.stop_token_ids = stop_ids.data();
  params.n_stop_token_ids = stop_ids.size();

  const std::string_view prompt = view_of(message.prompt());
  const std::string_view messages = view_of(message.messages_json());
  std::vector<int32_t> prompt_ids;
  pio_generate_request c_request{};
  c_request.struct_size = sizeof(c_request);
  c_request.prompt = prompt.data() == nullptr ? "" : prompt.data();
  c_request.prompt_len = prompt.size();
  if (!chat && message.prompt_token_ids() != nullptr) {
    prompt_ids.assign(message.prompt_token_ids()->begin(), message.prompt_token_ids()->end());
    c_request.prompt_token_ids = prompt_ids.data();
    c_request.n_prompt_token_ids = prompt_ids.size();
  }
  c_request.messages_json = messages.data() == nullptr ? "" : messages.data();
  c_request.messages_json_len = messages.size();
  c_request.params = &params;
  // A generation whose previous worker died: the plugin continues after the tokens the host
  // already forwarded. An empty list still means "resume" (the vector is present).
  std::vector<int32_t> resume_ids;
  const int32_t resume_none = 0;
  if (message.resume_token_ids() != nullptr) {
    if (!can_resume()) {
      return send_error(request.id,
                        unimplemented_error(fmt::format("{}: plugin {} cannot resume a generation",
                                                        verb_name, api_.name)));
    }
    resume_ids.assign(message.resume_token_ids()->begin(), message.resume_token_ids()->end());
    c_request.resume_token_ids = resume_ids.empty() ? &resume_none : resume_ids.data();
    c_request.n_resume_token_ids = resume_ids.size();
  }

  auto chunk = [&](std::span<const int32_t> ids, std::string_view text, wire::FinishReason reason,
                   uint32_t prompt_tokens, uint32_t completion_tokens) {
    flatbuffers::FlatBufferBuilder fbb;
    auto id_vector = fbb.CreateVector(ids.data(), ids.size());
    auto text_string = fbb.CreateString(text.data(), text.size());
    auto msg = wire::CreateTokenChunk(fbb, id_vector, text_string, 0, reason, prompt_tokens,
                                      completion_tokens);
    ipc::finish_envelope(fbb, request.id, wire::Message::TokenChunk, msg.Union());
    return send(fbb);
  };

  StreamState state;
  state.call = &call;
  state.stream = message.stream();
  state.completion_tokens = static_cast<uint32_t>(resume_ids.size());
  state.send_chunk = [&](std::span<const int32_t> ids, std::string_view text) {
    tokens_generated_.fetch_add(ids.size(), std::memory_order_relaxed);
    return chunk(ids, text, wire::FinishReason::None, 0, 0);
  };

  pio_generate_result result{sizeof(pio_generate_result), PIO_FINISH_NONE, 0, 0};
  Status status =
      take_error(verb(plugin_, as_call(&call), &c_request, &on_tokens, &state, &result));
  if (!state.stream) tokens_generated_.fetch_add(state.all_ids.size(), std::memory_order_relaxed);

  if (state.send_failed) {
    std::fprintf(stderr, "pio-worker: request %llu: a token chunk could not be sent\n",
                 static_cast<unsigned long long>(request.id));
    return;
  }
  if (state.plugin_misbehaved) {
    return send_error(
        request.id, internal_error(fmt::format("{}: plugin {} passed NULL token ids or text with a "
                                               "non-zero length to the token callback",
                                               verb_name, api_.name)));
  }
  const uint32_t completion =
      result.completion_tokens != 0 ? result.completion_tokens : state.completion_tokens;
  if (request.cancelled->load(std::memory_order_relaxed)) {
    chunk(state.all_ids, state.all_text, wire::FinishReason::Cancelled, result.prompt_tokens,
          completion)
        .ignore();
    return;
  }
  if (call.deadline_passed()) {
    return send_error(request.id, deadline_exceeded_error(fmt::format(
                                      "{}: the deadline of {} ms passed after {} tokens", verb_name,
                                      message.deadline_ms(), state.completion_tokens)));
  }
  if (!status.ok()) return send_error(request.id, status);
  wire::FinishReason reason;
  switch (result.finish_reason) {
    case PIO_FINISH_STOP:
      reason = wire::FinishReason::Stop;
      break;
    case PIO_FINISH_LENGTH:
      reason = wire::FinishReason::Length;
      break;
    case PIO_FINISH_CANCELLED:
      reason = wire::FinishReason::Cancelled;
      break;
    default:
      return send_error(
          request.id, internal_error(fmt::format("{}: plugin {} succeeded without a finish reason "
                                                 "(stop, length or cancelled)",
                                                 verb_name, api_.name)));
  }
  chunk(state.all_ids, state.all_text, reason, result.prompt_tokens, completion).ignore();
}

}  // namespace pio::sdk::worker
