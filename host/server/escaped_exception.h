#pragma once
// What an exception that escaped server code becomes. The server's threads (the network thread,
// the request threads, and token callbacks on the Host's loop) must never end on an exception:
// one bad string from one plugin would otherwise abort `pio serve` for every tenant. Each catches
// everything at its edge and calls escaped_exception(), which logs the details for operators and
// returns the Status a client is answered with (500 internal, without the details).
//
// The one thing a caller gets wrong: call it only inside a catch block (it rethrows the
// exception being handled to read it).

#include <string_view>

#include "pio/ipc/status.h"

namespace pio::server {

// Logs "pio server: <where>: <what the exception said>" to stderr; never throws.
Status escaped_exception(std::string_view where) noexcept;

}  // namespace pio::server
