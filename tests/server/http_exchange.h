#pragma once
// A raw HTTP/1.1 client for the server's tests and the soak: one request per connection
// ("Connection: close", so the response ends at EOF), and the decoding of a response and its
// server-sent events into what a client saw. Raw sockets on purpose: what is tested is the bytes
// the server sends, not what a forgiving client library makes of them.

#include <chrono>
#include <cstdint>
#include <string>

namespace pio::server::testing {

// Sends `request` to 127.0.0.1:`port` and returns everything the server sent until it closed the
// connection or `timeout` passed; empty when it could not connect.
std::string exchange(uint16_t port, const std::string& request,
                     std::chrono::steady_clock::duration timeout);

// A POST of a JSON body, with "Authorization: Bearer <api_key>" when a key is given.
std::string post(const std::string& target, const std::string& body,
                 const std::string& api_key = "");

// A GET, with "Authorization: Bearer <api_key>" when a key is given.
std::string get(const std::string& target, const std::string& api_key = "");

// What one request came to, read from the raw bytes.
struct Outcome {
  enum Kind {
    kCompleted,  // 200 and, for a stream, every event up to data: [DONE] without an error
    kError,      // a clean error: an OpenAI error body, or an error event followed by [DONE]
    kBroken,     // anything else: no answer, a cut stream, a body that is not what was promised
  } kind = kBroken;
  int status = 0;
  std::string text;        // the generated text (completed, or streamed before an error)
  std::string error_code;  // the error's "code" (or its "type" when it has no code)
  std::string why;         // what was wrong (broken)
};

// Decodes the response (chunked or not): a stream's events when `stream`, else the JSON body.
// `chat` picks where the text is (choices[0].delta.content / message.content vs choices[0].text).
Outcome classify(const std::string& raw, bool chat, bool stream);

}  // namespace pio::server::testing
