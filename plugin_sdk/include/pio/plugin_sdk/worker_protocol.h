#pragma once
// The protocol pio-worker speaks on its control channel: what the host sends, what comes back,
// and how the worker exits. The messages are the Envelopes of ipc/schema/messages.fbs; this file
// fixes how pio-worker uses them, so that the host side can be written against it.
//
// Start-up. The host starts `pio-worker [--model-root DIR]... PLUGIN_LIBRARY` with the control
// socket on fd 3, the arena memfd on fd 4 and the sealed stage-2 BPF memfd on fd 5 (an empty
// sealed memfd: no filtering); --control-fd, --arena-fd and --stage2-fd name other numbers. Each
// --model-root is a directory LoadModel paths must lie in (opened before stage 2). The worker maps
// the arena, installs stage 2, and only then dlopens the plugin. Its first message is Hello
// (request id 0) naming the plugin and the ABI version; if a step fails, its first and only
// message is Error (request id 0) naming the step, and it exits with the code below (when the
// arena or the channel itself cannot be set up there is no message: only the exit code and a line
// on stderr). The host sends nothing before Hello has arrived.
//
// Requests (host -> worker; the worker answers with the same request id):
//   Initialize    -> Result | Error                 (plugin initialize; first: every other
//                                                    request is refused with failed_precondition
//                                                    until one succeeded, and a second one until
//                                                    pio.cleanup)
//   LoadModel     -> Result | Error                 (path opened beneath its model root)
//   Infer         -> Result{outputs, json} | Error  (command "" or "infer": infer; a kCommand*
//                                                    below: that verb; anything else: execute)
//   Generate      -> TokenChunk* then the last TokenChunk with finish_reason != None, or Error.
//                    prompt / prompt_token_ids: generate_text; messages_json: chat_completion.
//                    stream = false: one TokenChunk with everything. Past deadline_ms: Error
//                    (deadline_exceeded) after the chunks already sent.
//   Heartbeat     -> Heartbeat{sequence, reply = true}   (answered even while a verb runs)
//   Stats         -> Stats{rss_bytes, requests_in_flight, tokens_generated, values:
//                    rss_source ("current" from /proc/self/statm, or "peak" from getrusage
//                    where the policy grants no /proc), output_slots_live}
//   Shutdown      -> in-flight work is cancelled, plugin cleanup, Result, exit 0.
// Notices (no answer unless they are wrong):
//   Cancel{target}  the target request stops: a generation ends with a TokenChunk whose
//                   finish_reason is Cancelled, any other verb with Error(cancelled). Unknown or
//                   finished targets are ignored.
//   Release{tensors} the host is done reading these worker->host slots; an unknown slot is
//                   answered with Error(invalid_argument) carrying the Release's request id.
//
// Execution. One thread reads the channel; the plugin's verbs run one at a time, in arrival
// order, on a second thread. So Heartbeat, Stats, Cancel and Release are handled while a verb
// runs, and a cancelled generation stops between two tokens (the plugin's token callback returns
// non-zero, and is_cancelled() turns true).
//
// Tensors. Inputs are descriptors into the host->worker ring; the worker validates each with
// validate_tensor_desc before the plugin sees it. The inputs of a request are released by its
// final answer (Result, Error, or the last TokenChunk): the worker never reads them afterwards,
// so the host frees their slots then, without a Release. Outputs are slots of the worker->host
// ring, allocated by the worker's ShmRing; they stay the host's until it sends Release. When
// the ring is full, an output allocation waits for Releases until the request's deadline
// (deadline_ms) but at most kDefaultOutputWaitMs, then the request fails with resource_exhausted.

#include <cstdint>
#include <string_view>

namespace pio::sdk {

// Infer.command values for the verbs that are not infer/execute. A plugin's own execute command
// never starts with "pio.".
inline constexpr std::string_view kCommandInfer = "infer";
inline constexpr std::string_view kCommandReservedPrefix = "pio.";
// Result.json: the plugin's JSON object.
inline constexpr std::string_view kCommandGetModelInfo = "pio.get_model_info";
// params_json: the candidate config. Result.json: {"supported": true|false}.
inline constexpr std::string_view kCommandSupportsConfig = "pio.supports_config";
// params_json: the keys to change. Result.json empty.
inline constexpr std::string_view kCommandUpdateConfig = "pio.update_config";
inline constexpr std::string_view kCommandInstall = "pio.install";
inline constexpr std::string_view kCommandCleanup = "pio.cleanup";
// params_json: {"text": "..."}. Result.json: {"token_ids": [...]}.
inline constexpr std::string_view kCommandTokenize = "pio.tokenize";
// params_json: {"token_ids": [...]}. Result.json: {"text": "..."} (invalid UTF-8 replaced).
inline constexpr std::string_view kCommandDetokenize = "pio.detokenize";

// Features listed in Hello.capabilities.
inline constexpr std::string_view kCapabilityText = "text";  // the plugin has the text verbs
// The plugin continues a generation from Generate.resume_token_ids (PIO_PLUGIN_CAPABILITY_RESUME).
inline constexpr std::string_view kCapabilityResume = "generate.resume";

inline constexpr uint32_t kDefaultOutputWaitMs = 10'000;

// pio-worker's exit codes. 0 after Shutdown (or when the host closed the channel).
enum class WorkerExitCode : int {
  kOk = 0,
  kUsage = 64,         // bad arguments
  kArena = 65,         // the arena fd is missing, unsealed or its header is wrong
  kChannel = 66,       // the control channel could not be set up, or broke
  kSandbox = 67,       // stage 2 could not be installed
  kPluginLoad = 68,    // dlopen failed, no pio_plugin_entry, or an ABI the worker does not speak
  kPluginCreate = 69,  // the plugin's create failed
};

}  // namespace pio::sdk
