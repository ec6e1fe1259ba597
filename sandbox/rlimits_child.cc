// Child side of rlimits: soft = hard, so nothing can raise them back (raising a hard limit
// needs CAP_SYS_RESOURCE in the initial user namespace, which a worker never has).

#include <sys/resource.h>

#include <cerrno>

#include "internal/child_plan.h"

namespace pio::sandbox {

int apply_rlimits_child(const ChildRlimit* rlimits, int count) {
  for (int i = 0; i < count; ++i) {
    if (setrlimit(static_cast<__rlimit_resource>(rlimits[i].resource), &rlimits[i].value) != 0) {
      return errno;
    }
  }
  return 0;
}

}  // namespace pio::sandbox
