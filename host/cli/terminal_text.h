#pragma once
// terminal_text: a string the worker wrote (streamed text, an error quoting its stderr, its
// model info), made safe to print on a terminal.
//
// The one thing a caller gets wrong: a plugin's bytes reach the user's terminal through `pio`;
// printed as they are, ESC/CSI sequences could move the cursor, rewrite what was shown, retitle
// the window or answer back. Pass every worker-derived string through this before printing it
// (JSON output needs it not: the JSON dump escapes control characters).

#include <string>
#include <string_view>

namespace pio::cli {

// `text` as valid UTF-8 (ill-formed bytes become U+FFFD) without terminal controls: ESC and the
// other C0 controls except '\n' and '\t', DEL, and the C1 controls U+0080-U+009F (CSI among
// them) are dropped. The printable rest of an escape sequence stays, inert.
std::string terminal_text(std::string_view text);

}  // namespace pio::cli
