// The functions of pio_host_services. They are called by plugin code through the C ABI, so each
// one checks its arguments as claims, never lets an exception out, and returns pio_error*.

#include "internal/worker_services.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "pio/plugin_sdk/worker_protocol.h"

namespace pio::sdk::worker {

namespace {

// Returned when even a new error cannot be allocated; never freed.
pio_error kOutOfMemory{PIO_ERROR_RESOURCE_EXHAUSTED, "out of memory while reporting an error"};

CallState* state_of(pio_call* call) { return reinterpret_cast<CallState*>(call); }

pio_error* error_new(pio_error_code code, const char* message) {
  try {
    return new pio_error{code, message == nullptr ? std::string() : std::string(message)};
  } catch (...) {
    return &kOutOfMemory;
  }
}

void error_delete(pio_error* error) {
  if (error != nullptr && error != &kOutOfMemory) delete error;
}

pio_error_code error_code(const pio_error* error) {
  return error == nullptr ? PIO_ERROR_INTERNAL : error->code;
}

const char* error_message(const pio_error* error) {
  return error == nullptr ? "" : error->message.c_str();
}

pio_error* error_from(const Status& status) {
  return error_new(static_cast<pio_error_code>(status.code()), status.message().c_str());
}

pio_error* output_alloc(pio_call* call, const char* name, pio_dtype dtype, const int64_t* shape,
                        uint32_t rank, void** data) {
  try {
    CallState* state = state_of(call);
    if (state == nullptr || data == nullptr || name == nullptr || (rank > 0 && shape == nullptr)) {
      return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_alloc: a required argument is NULL");
    }
    if (rank > ipc::kMaxTensorRank) {
      return error_from(invalid_argument_error(fmt::format(
          "output \"{}\": rank {} is above the limit of {}", name, rank, ipc::kMaxTensorRank)));
    }
    if (name[0] == '\0') return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_alloc: empty name");
    const auto wire_dtype = static_cast<wire::DType>(dtype);
    Result<uint64_t> bytes = ipc::tensor_byte_size(wire_dtype, std::span(shape, rank));
    if (!bytes.ok())
      return error_from(bytes.status().with_context(fmt::format("output \"{}\"", name)));
    // A full ring waits for the host's Releases: until the request's deadline, and never longer
    // than kDefaultOutputWaitMs (a request without a deadline must not wait forever).
    const ipc::Deadline wait_until = std::min(
        state->deadline, ipc::deadline_after(std::chrono::milliseconds(kDefaultOutputWaitMs)));
    Result<ipc::RingSlot> slot = state->ring->allocate(*bytes, wait_until, *state->cancelled);
    if (!slot.ok())
      return error_from(slot.status().with_context(fmt::format("output \"{}\"", name)));
    OutputTensor out{name, wire_dtype, ipc::TensorShape(shape, shape + rank), *slot};
    try {
      state->outputs.push_back(std::move(out));
    } catch (...) {
      state->ring->release(*slot).ignore();
      throw;
    }
    *data = const_cast<std::byte*>(state->arena_base) + slot->offset;
    return nullptr;
  } catch (const std::exception& e) {
    return error_new(PIO_ERROR_RESOURCE_EXHAUSTED, e.what());
  }
}

pio_error* output_json(pio_call* call, const char* json, size_t json_len) {
  try {
    if (call == nullptr || (json == nullptr && json_len > 0)) {
      return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_json: a required argument is NULL");
    }
    std::string text(json == nullptr ? "" : json, json_len);
    if (!nlohmann::json::accept(text)) {
      return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_json: the document is not valid JSON");
    }
    state_of(call)->json = std::move(text);
    return nullptr;
  } catch (const std::exception& e) {
    return error_new(PIO_ERROR_RESOURCE_EXHAUSTED, e.what());
  }
}

pio_error* output_tokens(pio_call* call, const int32_t* ids, size_t n) {
  try {
    if (call == nullptr || (ids == nullptr && n > 0)) {
      return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_tokens: a required argument is NULL");
    }
    auto& tokens = state_of(call)->tokens;
    tokens.insert(tokens.end(), ids, ids + n);
    return nullptr;
  } catch (const std::exception& e) {
    return error_new(PIO_ERROR_RESOURCE_EXHAUSTED, e.what());
  }
}

pio_error* output_text(pio_call* call, const char* text, size_t text_len) {
  try {
    if (call == nullptr || (text == nullptr && text_len > 0)) {
      return error_new(PIO_ERROR_INVALID_ARGUMENT, "output_text: a required argument is NULL");
    }
    state_of(call)->text.append(text == nullptr ? "" : text, text_len);
    return nullptr;
  } catch (const std::exception& e) {
    return error_new(PIO_ERROR_RESOURCE_EXHAUSTED, e.what());
  }
}

int is_cancelled(pio_call* call) {
  const CallState* state = state_of(call);
  if (state == nullptr) return 1;
  return state->cancelled->load(std::memory_order_relaxed) || state->deadline_passed() ? 1 : 0;
}

void log(pio_log_level level, const char* message) {
  static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
  const char* name = (level >= PIO_LOG_DEBUG && level <= PIO_LOG_ERROR) ? kLevels[level] : "log";
  // One fprintf per line: stderr is unbuffered, so lines of two threads do not interleave.
  std::fprintf(stderr, "plugin %s: %s\n", name, message == nullptr ? "" : message);
}

const pio_host_services kServices = {
    sizeof(pio_host_services),
    PIO_PLUGIN_ABI_VERSION,
    &error_new,
    &error_delete,
    &error_code,
    &error_message,
    &output_alloc,
    &output_json,
    &output_tokens,
    &output_text,
    &is_cancelled,
    &log,
};

}  // namespace

void CallState::drop_outputs() {
  for (const auto& out : outputs) ring->release(out.slot).ignore();
  outputs.clear();
}

const pio_host_services* host_services() { return &kServices; }

Status take_error(pio_error* error) {
  if (error == nullptr) return ok_status();
  ErrorCode code = ErrorCode::kInternal;
  if (error->code >= PIO_ERROR_INVALID_ARGUMENT && error->code <= PIO_ERROR_UNIMPLEMENTED) {
    code = static_cast<ErrorCode>(error->code);
  }
  Status status(code, error->message);
  error_delete(error);
  return status;
}

}  // namespace pio::sdk::worker
