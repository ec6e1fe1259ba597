// rlimits, host side.

#include "internal/rlimits.h"

#include <sys/resource.h>

#include <cstdint>
#include <optional>

namespace pio::sandbox {

int child_rlimits(const RlimitPolicy& policy, ChildRlimit* out) {
  struct RlimitValue {
    int resource;
    std::optional<uint64_t> value;
  };
  int count = 0;
  for (RlimitValue r :
       {RlimitValue{RLIMIT_NOFILE, policy.nofile}, RlimitValue{RLIMIT_FSIZE, policy.fsize_bytes},
        RlimitValue{RLIMIT_CPU, policy.cpu_seconds}, RlimitValue{RLIMIT_CORE, policy.core_bytes},
        RlimitValue{RLIMIT_MEMLOCK, policy.memlock_bytes},
        RlimitValue{RLIMIT_STACK, policy.stack_bytes}, RlimitValue{RLIMIT_AS, policy.as_bytes}}) {
    if (!r.value) continue;
    rlim_t value = *r.value;
    rlimit host{};
    if (getrlimit(static_cast<__rlimit_resource>(r.resource), &host) == 0 &&
        host.rlim_max < value) {
      value = host.rlim_max;
    }
    out[count++] = ChildRlimit{r.resource, {value, value}};
  }
  return count;
}

}  // namespace pio::sandbox
