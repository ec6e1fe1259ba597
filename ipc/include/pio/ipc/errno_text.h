#pragma once

#include <string_view>

namespace pio {

// What errno `err` means ("No such file or directory"), safe from any thread: std::strerror is
// not (it may format into one shared buffer).
std::string_view errno_text(int err);

}  // namespace pio
