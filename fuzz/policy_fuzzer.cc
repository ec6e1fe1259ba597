// Fuzzes parse_policy: every input either parses into a Policy or is refused with a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pio/sandbox/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = pio::sandbox::parse_policy(text, "fuzz.json");
  if (!policy.ok() && policy.status().message().empty()) __builtin_trap();
  return 0;
}
