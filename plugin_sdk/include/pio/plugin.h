#pragma once
/*
 * pio/plugin.h: the C ABI between pio-worker and a plugin library.
 *
 * A plugin is a shared library that exports exactly one symbol, pio_plugin_entry. The worker
 * dlopens the library inside the sandbox, calls pio_plugin_entry(PIO_PLUGIN_ABI_VERSION) and from
 * then on talks to the plugin only through the returned table of function pointers. Plugins built
 * with any compiler load, because nothing but C types crosses this boundary.
 *
 * Most authors do not write against this header directly: pio/plugin.hpp is the C++ interface and
 * its PIO_PLUGIN(Class) macro emits everything below. Read this file for the rules both follow.
 *
 * Rules that hold for every function here:
 *  - Errors: a function that can fail returns pio_error*. NULL means success. A non-NULL error
 *    was made with pio_host_services.error_new and is owned by the caller of the function that
 *    returned it (the worker frees it); the plugin never touches it again.
 *  - Memory: the plugin never hands memory it allocated to the worker. Results go out through
 *    the worker's services (output_alloc, output_json, output_tokens, output_text, the token
 *    callback), which copy or place them where the host will read them. Pointers the worker
 *    passes in are borrowed for the duration of the call only, unless a comment says otherwise.
 *  - Threads: the worker calls every function of one pio_plugin from one thread at a time
 *    (calls are serialised), but not necessarily always from the same thread.
 *  - No C++ exception, longjmp or signal may leave a function of this table.
 *  - Strings are UTF-8 with an explicit length; a `const char*` without a length is
 *    NUL-terminated.
 *
 * Versioning: PIO_PLUGIN_ABI_VERSION changes when an existing function or struct changes
 * meaning. Adding fields at the end of a struct does not change it; every struct that may grow
 * starts with struct_size, which the reader checks before it reads a newer field.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* A C header: its types are named as C names them, not as the C++ code's CamelCase. */
/* NOLINTBEGIN(readability-identifier-naming) */

#define PIO_PLUGIN_ABI_VERSION 1u

#if defined(__GNUC__)
#define PIO_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PIO_PLUGIN_EXPORT
#endif

/* Error codes; the same values and meanings as pio::ErrorCode (pio/ipc/status.h). */
typedef enum pio_error_code {
  PIO_ERROR_INVALID_ARGUMENT = 1,    /* the request is wrong; retrying never helps */
  PIO_ERROR_NOT_FOUND = 2,           /* a named thing (model file, command) does not exist */
  PIO_ERROR_PERMISSION_DENIED = 3,   /* not allowed (a path outside the roots, a sandboxed call) */
  PIO_ERROR_RESOURCE_EXHAUSTED = 4,  /* a limit was hit (output ring full, memory); retry later */
  PIO_ERROR_FAILED_PRECONDITION = 5, /* wrong state (infer before load_model) */
  PIO_ERROR_UNAVAILABLE = 6,         /* transient; retry with backoff */
  PIO_ERROR_DEADLINE_EXCEEDED = 7,   /* the request's deadline passed */
  PIO_ERROR_CANCELLED = 8,           /* the caller cancelled */
  PIO_ERROR_INTERNAL = 9,            /* a bug (an exception escaped the plugin's code) */
  PIO_ERROR_UNIMPLEMENTED = 10,      /* the plugin does not implement this verb or command */
  PIO_ERROR_WORKER_CRASHED = 11      /* reserved for the host; a plugin never returns it */
} pio_error_code;

/* Element types; the same values as pio::wire::DType (ipc/schema/messages.fbs). */
typedef enum pio_dtype {
  PIO_DTYPE_F32 = 0,
  PIO_DTYPE_F16 = 1,
  PIO_DTYPE_BF16 = 2,
  PIO_DTYPE_F64 = 3,
  PIO_DTYPE_I8 = 4,
  PIO_DTYPE_U8 = 5,
  PIO_DTYPE_I16 = 6,
  PIO_DTYPE_I32 = 7,
  PIO_DTYPE_I64 = 8,
  PIO_DTYPE_BOOL = 9
} pio_dtype;

/* Why a generation ended; the same values as pio::wire::FinishReason. */
typedef enum pio_finish_reason {
  PIO_FINISH_NONE = 0,      /* not finished (never a valid final answer) */
  PIO_FINISH_STOP = 1,      /* end of sequence or a stop string/token */
  PIO_FINISH_LENGTH = 2,    /* max_tokens reached */
  PIO_FINISH_CANCELLED = 3, /* the token callback returned non-zero or is_cancelled said so */
  PIO_FINISH_ERROR = 4      /* reserved for the worker */
} pio_finish_reason;

/* What a plugin can do beyond the verbs of its table (pio_plugin_api.capabilities, a bit set). */
typedef enum pio_plugin_capability {
  /* generate_text and chat_completion continue a generation from
   * pio_generate_request.resume_token_ids (see there). */
  PIO_PLUGIN_CAPABILITY_RESUME = 1
} pio_plugin_capability;

typedef enum pio_log_level {
  PIO_LOG_DEBUG = 0,
  PIO_LOG_INFO = 1,
  PIO_LOG_WARNING = 2,
  PIO_LOG_ERROR = 3
} pio_log_level;

/* Opaque handles. */
typedef struct pio_error pio_error;   /* an error made by error_new; see the rules above */
typedef struct pio_plugin pio_plugin; /* one instance of the plugin, made by create */
typedef struct pio_call pio_call;     /* one request in the worker: outputs, cancellation */

/*
 * A tensor the host wrote into shared memory, seen in place (zero copy). Borrowed for the
 * duration of the call: `data` points into the host->worker ring, which the host reuses once the
 * request has been answered, so a plugin that needs the bytes later copies them.
 * The worker has checked dtype, shape and length against each other and the ring's bounds.
 */
typedef struct pio_tensor_view {
  uint32_t struct_size;
  const char* name; /* NUL-terminated */
  pio_dtype dtype;
  const int64_t* shape; /* `rank` dimensions, each >= 0 */
  uint32_t rank;
  const void* data; /* `length` bytes, aligned for dtype */
  uint64_t length;  /* product(shape) * element size */
} pio_tensor_view;

/* What load_model opens: the host resolved `path` against the plugin's model roots, and the
 * worker opened it beneath its root (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS). */
typedef struct pio_model_source {
  uint32_t struct_size;
  const char* path; /* absolute, NUL-terminated; "" when the host sent no path */
  int fd;           /* the opened file or directory, -1 without a path. Borrowed: closed by the
                       worker after load_model returns; dup() it to keep it. */
} pio_model_source;

typedef struct pio_sampling_params {
  uint32_t struct_size;
  uint32_t max_tokens;
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  float repetition_penalty;
  float presence_penalty;
  float frequency_penalty;
  uint64_t seed;
  int has_seed;
  const char* const* stop; /* n_stop NUL-terminated strings */
  size_t n_stop;
  const int32_t* stop_token_ids;
  size_t n_stop_token_ids;
  int ignore_eos;
} pio_sampling_params;

/* A text generation. generate_text gets `prompt` or `prompt_token_ids` (exactly one is set:
 * prompt_token_ids == NULL means the prompt is text); chat_completion gets `messages_json`. */
typedef struct pio_generate_request {
  uint32_t struct_size;
  const char* prompt;
  size_t prompt_len;
  const int32_t* prompt_token_ids;
  size_t n_prompt_token_ids;
  const char*
      messages_json; /* a JSON array of {"role", "content"} objects, or an object
                        {"messages": [...], "tools": [...], "chat_template_kwargs": {...}} */
  size_t messages_json_len;
  const pio_sampling_params* params;
  /* Only for a plugin whose table lists PIO_PLUGIN_CAPABILITY_RESUME, and only when struct_size
   * covers these fields; NULL otherwise. The generation's worker died after the client got these
   * n_resume_token_ids tokens (possibly none): continue as if the plugin had just generated them
   * itself (same prompt, sampling state advanced past them, text held back for a stop string or
   * an unfinished character as it was then), pass on_tokens only what follows, and count them in
   * completion_tokens. Greedy or seeded, the whole stream is then the one an uninterrupted run
   * gives. */
  const int32_t* resume_token_ids;
  size_t n_resume_token_ids;
} pio_generate_request;

/* Filled by generate_text / chat_completion on success. */
typedef struct pio_generate_result {
  uint32_t struct_size;
  pio_finish_reason finish_reason; /* STOP, LENGTH or CANCELLED */
  uint32_t prompt_tokens;
  uint32_t completion_tokens;
} pio_generate_result;

/*
 * Streaming: called by the plugin for each new piece of output, in order. `token_ids` are the new
 * tokens, `text` their UTF-8 text (never half a character: hold bytes back until they complete
 * one). Both are borrowed for the call. Returns 0 to continue; non-zero means the request was
 * cancelled: the plugin stops generating, and returns with finish_reason CANCELLED.
 */
typedef int (*pio_token_callback)(void* user, const int32_t* token_ids, size_t n_tokens,
                                  const char* text, size_t text_len);

/*
 * What the worker offers the plugin. Given to create, valid until destroy returns.
 * Every function here is safe to call from the thread that is inside a plugin function.
 */
typedef struct pio_host_services {
  uint32_t struct_size;
  uint32_t abi_version;

  /* A new error. Never returns NULL (on allocation failure it returns a preallocated error).
   * Ownership: the plugin owns it until it returns it from one of its functions. */
  pio_error* (*error_new)(pio_error_code code, const char* message);
  /* Frees an error the plugin made, or got from a service below, and decided not to return. */
  void (*error_delete)(pio_error* error);
  /* The code and message of an error (the message stays valid until the error is freed). */
  pio_error_code (*error_code)(const pio_error* error);
  const char* (*error_message)(const pio_error* error);

  /* An output tensor of `call`, placed straight into the worker->host ring: writes the address
   * of `product(shape) * element size` writable bytes to *data. The memory belongs to the
   * worker; the plugin fills it before its function returns and never touches it afterwards.
   * `name` and `shape` are copied. On failure *data is untouched and the returned error is the
   * plugin's (return it, or delete it): RESOURCE_EXHAUSTED when the ring stays full until the
   * request's deadline, INVALID_ARGUMENT for a bad name, dtype or shape. */
  pio_error* (*output_alloc)(pio_call* call, const char* name, pio_dtype dtype,
                             const int64_t* shape, uint32_t rank, void** data);
  /* Sets the JSON document the request answers with (replacing an earlier one). Copied.
   * INVALID_ARGUMENT when it is not valid JSON. */
  pio_error* (*output_json)(pio_call* call, const char* json, size_t json_len);
  /* Appends token ids (tokenize). Copied. */
  pio_error* (*output_tokens)(pio_call* call, const int32_t* ids, size_t n);
  /* Appends text (detokenize). Copied. */
  pio_error* (*output_text)(pio_call* call, const char* text, size_t text_len);
  /* Non-zero once the host cancelled `call` or its deadline passed: stop early and return
   * PIO_ERROR_CANCELLED (or, for a generation, finish_reason CANCELLED). */
  int (*is_cancelled)(pio_call* call);
  /* A line in the worker's log (the host keeps the last lines for crash reports). */
  void (*log)(pio_log_level level, const char* message);
} pio_host_services;

/*
 * The plugin's table. Returned by pio_plugin_entry, static for the life of the library.
 * Every function pointer marked "required" is non-NULL; an optional one may be NULL, and the
 * worker then answers the verb with PIO_ERROR_UNIMPLEMENTED. The text functions are NULL
 * unless the plugin is a text model.
 */
typedef struct pio_plugin_api {
  uint32_t struct_size; /* sizeof(pio_plugin_api) the plugin was built with */
  uint32_t abi_version; /* PIO_PLUGIN_ABI_VERSION the plugin was built with */
  const char* name;     /* plugin name, as in its manifest; static */
  const char* version;  /* plugin version, as in its manifest; static */

  /* Required. Makes the plugin instance. On success *out owns it (free with destroy); on
   * failure *out is untouched and nothing needs freeing. `host` stays valid until destroy. */
  pio_error* (*create)(const pio_host_services* host, pio_plugin** out);
  /* Required. Frees the instance; it never fails. The worker calls cleanup first. */
  void (*destroy)(pio_plugin* plugin);

  /* Required. The plugin's configuration (the manifest's default_config merged with the
   * operator's), a JSON object. Called once, before any other verb. */
  pio_error* (*initialize)(pio_plugin* plugin, const char* config_json, size_t config_len);
  /* Required. Loads the model `source` with `config_json` (a JSON object, possibly empty). */
  pio_error* (*load_model)(pio_plugin* plugin, const pio_model_source* source,
                           const char* config_json, size_t config_len);
  /* Required. Runs the model on `inputs` (n_inputs views, borrowed) and writes every output
   * through host->output_alloc(call, ...). On failure, outputs already allocated are dropped by
   * the worker. */
  pio_error* (*infer)(pio_plugin* plugin, pio_call* call, const pio_tensor_view* inputs,
                      size_t n_inputs);
  /* Required. Releases what load_model and initialize acquired; the instance may be
   * initialized again afterwards. */
  pio_error* (*cleanup)(pio_plugin* plugin);

  /* Optional. Writes 1 (supported) or 0 to *supported for a candidate configuration. */
  pio_error* (*supports_config)(pio_plugin* plugin, const char* config_json, size_t config_len,
                                int* supported);
  /* Optional. Prepares what the plugin needs inside its scratch directory (no network unless
   * the trust level grants it). */
  pio_error* (*install)(pio_plugin* plugin);
  /* Optional. Answers with a JSON object through host->output_json(call, ...). */
  pio_error* (*get_model_info)(pio_plugin* plugin, pio_call* call);
  /* Optional. Changes configuration at run time (JSON object of the keys to change). */
  pio_error* (*update_config)(pio_plugin* plugin, const char* config_json, size_t config_len);
  /* Optional. A named command of the plugin's own (`command` NUL-terminated, never starting
   * with "pio."), with JSON parameters and optional tensors; answers through output_json and/or
   * output_alloc. PIO_ERROR_NOT_FOUND for a command it does not know. */
  pio_error* (*execute)(pio_plugin* plugin, pio_call* call, const char* command,
                        const char* params_json, size_t params_len, const pio_tensor_view* inputs,
                        size_t n_inputs);

  /* Text models. Optional (NULL for other models). */
  /* Appends the token ids of `text` through host->output_tokens(call, ...). */
  pio_error* (*tokenize)(pio_plugin* plugin, pio_call* call, const char* text, size_t text_len);
  /* Appends the text of `ids` through host->output_text(call, ...). */
  pio_error* (*detokenize)(pio_plugin* plugin, pio_call* call, const int32_t* ids, size_t n);
  /* Generates from request->prompt (or prompt_token_ids), calling on_tokens for each piece.
   * On success *result is filled. When on_tokens returns non-zero or host->is_cancelled(call)
   * turns non-zero, the plugin stops and succeeds with finish_reason CANCELLED. */
  pio_error* (*generate_text)(pio_plugin* plugin, pio_call* call,
                              const pio_generate_request* request, pio_token_callback on_tokens,
                              void* user, pio_generate_result* result);
  /* As generate_text, from request->messages_json rendered with the model's chat template. */
  pio_error* (*chat_completion)(pio_plugin* plugin, pio_call* call,
                                const pio_generate_request* request, pio_token_callback on_tokens,
                                void* user, pio_generate_result* result);

  /* Added after the first version of ABI 1: read only when struct_size covers it. */
  uint64_t capabilities; /* pio_plugin_capability bits */
} pio_plugin_api;

/*
 * The one symbol a plugin exports. `abi_version` is the version the worker speaks. Returns the
 * plugin's table, or NULL when the plugin cannot speak that version (the worker then refuses
 * the plugin with a message naming both versions). Must not fail otherwise, allocate, or run
 * model code: it may be called before the sandbox lets the plugin do anything useful.
 */
PIO_PLUGIN_EXPORT const pio_plugin_api* pio_plugin_entry(uint32_t abi_version);

typedef const pio_plugin_api* (*pio_plugin_entry_fn)(uint32_t abi_version);

/* NOLINTEND(readability-identifier-naming) */
#ifdef __cplusplus
}
#endif
